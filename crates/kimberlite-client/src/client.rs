//! [`Client`]: one method per `/v1` route, each answering a typed value or a [`ClientError`].

use std::time::Duration;

use kimberlite_proof::{ConsistencyBundle, InclusionBundle};
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::batch::{encode, Encoding};
use crate::error::{ApiError, ClientError};
use crate::model::{Appended, Grant, KeyInfo, NewKey, Page, PageJson, StreamInfo, VerifyReport};
use crate::routing::Routing;
use crate::tail::Tail;

/// A blocking client of one Kimberlite server.
///
/// Cheap to clone (connections are pooled and shared). Every call blocks the calling thread;
/// from async code, call it on a blocking thread (`tokio::task::spawn_blocking`).
#[derive(Debug, Clone)]
pub struct Client {
    /// Calls bounded by the request timeout.
    http: reqwest::blocking::Client,
    /// Tails: no bound on the whole answer, which lasts as long as the tail.
    streaming: reqwest::blocking::Client,
    base: Url,
    token: Option<String>,
    request_timeout: Duration,
    /// Redirects, request ids and retries (a cluster's leader; `routing.rs`).
    routing: Routing,
}

impl Client {
    pub(crate) fn from_parts(
        http: reqwest::blocking::Client,
        streaming: reqwest::blocking::Client,
        base: Url,
        token: Option<String>,
        request_timeout: Duration,
        routing: Routing,
    ) -> Self {
        Self {
            http,
            streaming,
            base,
            token,
            request_timeout,
            routing,
        }
    }

    /// A new request id of this client (`<client id>-<sequence>`), for a write sent by
    /// other means that must be recognised when sent again.
    #[must_use]
    pub fn next_request_id(&self) -> String {
        self.routing.next_request_id()
    }

    /// The server's base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /healthz`: `Ok` when the server answers that it is alive.
    pub fn healthz(&self) -> Result<(), ClientError> {
        self.send(self.request(Method::GET, &["healthz"])?)?;
        Ok(())
    }

    /// `GET /v1/streams`: the streams this key may read or append to.
    pub fn list_streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        json(self.send(self.request(Method::GET, &["v1", "streams"])?)?)
    }

    /// `POST /v1/streams`: creates `name` (admin). A stream that exists is a 409 conflict.
    pub fn create_stream(&self, name: &str) -> Result<StreamInfo, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "streams"])?
            .json(&serde_json::json!({ "name": name }));
        json(self.send(request)?)
    }

    /// `GET /v1/streams/{stream}`: one stream's next offset and head.
    pub fn stream(&self, stream: &str) -> Result<StreamInfo, ClientError> {
        json(self.send(self.request(Method::GET, &["v1", "streams", stream])?)?)
    }

    /// Appends `events` as one atomic batch, sent as exact bytes ([`Encoding::Binary`]).
    /// With `expected_offset`, the server writes nothing unless the stream's next offset is
    /// exactly that, and answers a conflict naming the real one
    /// ([`ClientError::conflict_next_offset`]). The answer comes once the batch is durable.
    pub fn append<E: AsRef<[u8]>>(
        &self,
        stream: &str,
        events: &[E],
        expected_offset: Option<u64>,
    ) -> Result<Appended, ClientError> {
        self.append_as(stream, Encoding::Binary, events, expected_offset)
    }

    /// [`Self::append`] in the chosen body encoding.
    pub fn append_as<E: AsRef<[u8]>>(
        &self,
        stream: &str,
        encoding: Encoding,
        events: &[E],
        expected_offset: Option<u64>,
    ) -> Result<Appended, ClientError> {
        let body = encode(encoding, events)?;
        let mut request = self
            .request(Method::POST, &["v1", "streams", stream, "events"])?
            .header(reqwest::header::CONTENT_TYPE, encoding.content_type())
            .body(body);
        if let Some(offset) = expected_offset {
            request = request.query(&[("expected_offset", offset)]);
        }
        json(self.send(request)?)
    }

    /// One page of verified events from offset `from`: at most `limit` (the server caps it
    /// at its page size). The page may be short; [`Page::next_offset`] says where to go on.
    pub fn read(&self, stream: &str, from: u64, limit: Option<u64>) -> Result<Page, ClientError> {
        let request = self.read_request(stream, from, limit)?;
        json::<PageJson>(self.send(request)?)?.into_page()
    }

    /// A long poll: like [`Self::read`], but when no event at or after `from` exists yet,
    /// the server waits up to `wait` (it caps the wait) for one before answering an empty
    /// page.
    pub fn read_wait(
        &self,
        stream: &str,
        from: u64,
        limit: Option<u64>,
        wait: Duration,
    ) -> Result<Page, ClientError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let request = self
            .read_request(stream, from, limit)?
            .query(&[("wait_ms", wait_ms)])
            .timeout(self.request_timeout.saturating_add(wait));
        json::<PageJson>(self.send(request)?)?.into_page()
    }

    fn read_request(
        &self,
        stream: &str,
        from: u64,
        limit: Option<u64>,
    ) -> Result<RequestBuilder, ClientError> {
        let mut request = self
            .request(Method::GET, &["v1", "streams", stream, "events"])?
            .query(&[("from", from)]);
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit)]);
        }
        Ok(request)
    }

    /// `GET /v1/streams/{stream}/tail`: follows the stream from offset `from` as server-sent
    /// events, one item per event, until the server ends it or an error comes. No time limit
    /// past connecting: a vanished server is noticed by TCP keep-alive
    /// ([`crate::TCP_KEEPALIVE`]).
    pub fn tail(&self, stream: &str, from: u64) -> Result<Tail, ClientError> {
        let request = self
            .request_on(
                &self.streaming,
                Method::GET,
                &["v1", "streams", stream, "tail"],
            )?
            .query(&[("from", from)])
            .header(reqwest::header::ACCEPT, "text/event-stream");
        Ok(Tail::new(self.send(request)?, from))
    }

    /// `GET /v1/streams/{stream}/verify`: the server checks every record of the stream.
    /// Damage is not an error here: the report says (`intact`, `problems`).
    pub fn verify(&self, stream: &str) -> Result<VerifyReport, ClientError> {
        let response =
            self.send(self.request(Method::GET, &["v1", "streams", stream, "verify"])?)?;
        VerifyReport::from_json(json(response)?)
    }

    /// The event at `offset` and its inclusion proof in the tree of `tree_size` events
    /// (default: the stream's current size), as `kimberlite prove` prints it; check it
    /// offline against a checkpoint with `kimberlite_proof::verify_bundle`.
    pub fn inclusion_proof(
        &self,
        stream: &str,
        offset: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionBundle, ClientError> {
        let mut request = self
            .request(
                Method::GET,
                &["v1", "streams", stream, "proofs", "inclusion"],
            )?
            .query(&[("offset", offset)]);
        if let Some(size) = tree_size {
            request = request.query(&[("tree_size", size)]);
        }
        json(self.send(request)?)
    }

    /// A consistency proof between the trees of `old` and `new` events, as
    /// `kimberlite prove-consistency` prints it.
    pub fn consistency_proof(
        &self,
        stream: &str,
        old: u64,
        new: u64,
    ) -> Result<ConsistencyBundle, ClientError> {
        let request = self
            .request(
                Method::GET,
                &["v1", "streams", stream, "proofs", "consistency"],
            )?
            .query(&[("old", old), ("new", new)]);
        json(self.send(request)?)
    }

    /// `GET /v1/streams/{stream}/checkpoint`: a checkpoint of the stream's durable tree head
    /// signed by the server's key (a C2SP signed note, as text).
    pub fn checkpoint(&self, stream: &str) -> Result<String, ClientError> {
        let response =
            self.send(self.request(Method::GET, &["v1", "streams", stream, "checkpoint"])?)?;
        response.text().map_err(ClientError::from)
    }

    /// `GET /v1/keys`: every key (admin), never their tokens.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, ClientError> {
        json(self.send(self.request(Method::GET, &["v1", "keys"])?)?)
    }

    /// `POST /v1/keys`: a new key named `name` with `grants` (admin); its token is shown
    /// only in this answer.
    pub fn create_key(&self, name: &str, grants: &[Grant]) -> Result<NewKey, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "keys"])?
            .json(&serde_json::json!({ "name": name, "grants": grants }));
        json(self.send(request)?)
    }

    /// `DELETE /v1/keys/{id}`: revokes a key (admin); it is refused from the next request.
    pub fn revoke_key(&self, id: &str) -> Result<(), ClientError> {
        self.send(self.request(Method::DELETE, &["v1", "keys", id])?)?;
        Ok(())
    }

    /// A request to the route made of `segments` (each percent-encoded as one path
    /// segment), with the bearer token.
    pub(crate) fn request(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<RequestBuilder, ClientError> {
        self.request_on(&self.http, method, segments)
    }

    fn request_on(
        &self,
        http: &reqwest::blocking::Client,
        method: Method,
        segments: &[&str],
    ) -> Result<RequestBuilder, ClientError> {
        let url = route(&self.base, segments)?;
        let request = http.request(method, url);
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }

    /// Sends `request` (following redirects to a cluster's leader, retrying per the
    /// client's [`crate::RetryPolicy`]); an answer that is not a success becomes the
    /// server's [`ApiError`].
    pub(crate) fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let (http, request) = request.build_split();
        let response = self.routing.execute(&http, request?)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().unwrap_or_default();
        Err(ApiError::from_response(status.as_u16(), &body).into())
    }
}

/// `base` with `segments` appended, each one path segment whatever it holds (`/`, `?`, `#`
/// and `%` are percent-encoded). `.` and `..` are refused: URL normalisation would make them
/// climb out of the route instead of naming a stream.
fn route(base: &Url, segments: &[&str]) -> Result<Url, ClientError> {
    if let Some(segment) = segments
        .iter()
        .find(|segment| matches!(**segment, "" | "." | ".."))
    {
        return Err(ClientError::InvalidArgument(format!(
            "{segment:?} cannot be a stream or key name"
        )));
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ClientError::Config(format!("{base} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The JSON body of `response` as `T`; a body that is not is a protocol error.
pub(crate) fn json<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let bytes = response.bytes()?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ClientError::Protocol(format!(
            "expected {} JSON: {error}",
            std::any::type_name::<T>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_one_percent_encoded_segment() {
        let base = Url::parse("http://h:1/prefix").unwrap();
        let url = route(&base, &["v1", "streams", "a/b?c#d%e f", "events"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/v1/streams/a%2Fb%3Fc%23d%25e%20f/events"
        );
        let root = Url::parse("http://h:1/").unwrap();
        assert_eq!(
            route(&root, &["healthz"]).unwrap().as_str(),
            "http://h:1/healthz"
        );
        for bad in ["", ".", ".."] {
            assert!(matches!(
                route(&root, &["v1", "streams", bad]),
                Err(ClientError::InvalidArgument(_))
            ));
        }
    }
}
