//! How a request reaches a cluster's leader: redirects followed by hand (method, body and
//! headers kept, the token included, which reqwest drops on a redirect to another port),
//! request ids on writes, and bounded retries with the same request id after a connection
//! error or a 503 that says to retry (docs/SERVER.md, section "Cluster mode").

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::blocking::{Client as Http, Request, Response};
use reqwest::header::{HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};

use crate::error::ClientError;

/// The header carrying a write's request id.
pub const REQUEST_ID_HEADER: &str = "kimberlite-request-id";

/// Most redirects one request follows (a follower to the leader, and once more during an
/// election).
const REDIRECTS_MAX: u32 = 4;

/// How a client retries: at most `attempts` sends of one request, pausing `first_delay`, then
/// twice as long each time up to `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends of one request at most (1: no retry).
    pub attempts: u32,
    /// The first pause.
    pub first_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 10 sends over about 5 seconds: a leader election takes well under that.
    fn default() -> Self {
        Self {
            attempts: 10,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(800),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Where a client's requests go, shared by its clones.
#[derive(Debug, Clone)]
pub(crate) struct Routing(Arc<Shared>);

#[derive(Debug)]
pub(crate) struct Shared {
    /// The servers: the base URL first, then the other nodes given.
    servers: Vec<Url>,
    /// The server tried first: the last leader a redirect named, else the one that last
    /// answered.
    current: Mutex<Option<Url>>,
    turn: AtomicUsize,
    client_id: u128,
    next_seq: AtomicU64,
    retry: RetryPolicy,
}

impl std::ops::Deref for Routing {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `url` sent to `server` instead (scheme, host and port; the path and query kept).
fn retarget(url: &mut Url, server: &Url) {
    let _ = url.set_scheme(server.scheme());
    let _ = url.set_host(server.host_str());
    let _ = url.set_port(server.port());
}

impl Routing {
    pub(crate) fn new(
        base: Url,
        others: Vec<Url>,
        retry: RetryPolicy,
    ) -> Result<Self, ClientError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|error| {
            ClientError::Config(format!("no randomness for a client id: {error}"))
        })?;
        let mut servers = vec![base];
        servers.extend(others);
        Ok(Self(Arc::new(Shared {
            servers,
            current: Mutex::new(None),
            turn: AtomicUsize::new(0),
            client_id: u128::from_le_bytes(id),
            next_seq: AtomicU64::new(1),
            retry,
        })))
    }

    /// The next request id: this client's id and a new sequence number.
    pub(crate) fn next_request_id(&self) -> String {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        format!("{:032x}-{seq}", self.client_id)
    }

    fn current(&self) -> Option<Url> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_current(&self, server: Option<Url>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = server;
    }

    /// The next server to try after one could not be reached.
    fn next_server(&self) -> Option<&Url> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed) + 1;
        self.servers.get(turn % self.servers.len().max(1))
    }

    /// Sends `request` through `http`: follows redirects, retries per the policy, and
    /// answers the last response (an error status included) or the last transport error.
    pub(crate) fn execute(
        &self,
        http: &Http,
        mut request: Request,
    ) -> Result<Response, ClientError> {
        let write = is_write(request.method());
        if write && !request.headers().contains_key(REQUEST_ID_HEADER) {
            if let Ok(value) = HeaderValue::from_str(&self.next_request_id()) {
                request.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
        }
        if let Some(server) = self.current() {
            retarget(request.url_mut(), &server);
        }
        let (mut redirects, mut sends) = (0u32, 1u32);
        loop {
            let spare = request.try_clone();
            let url = request.url().clone();
            let outcome = http.execute(request);
            let exhausted = sends >= self.retry.attempts || spare.is_none();
            match outcome {
                Ok(response)
                    if matches!(
                        response.status(),
                        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
                    ) =>
                {
                    redirects += 1;
                    let location = response
                        .headers()
                        .get(LOCATION)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|location| url.join(location).ok());
                    let (Some(location), Some(mut next)) = (location, spare) else {
                        return Ok(response);
                    };
                    if redirects > REDIRECTS_MAX {
                        if exhausted {
                            return Err(ClientError::Protocol(format!(
                                "more than {REDIRECTS_MAX} redirects (last to {location})"
                            )));
                        }
                        // Two nodes naming each other the leader during an election: pause
                        // as after a 503, then follow again (same request id).
                        redirects = 0;
                        std::thread::sleep(self.retry.delay(sends - 1));
                        sends += 1;
                    }
                    self.set_current(Some(location.clone()));
                    *next.url_mut() = location;
                    request = next;
                    continue;
                }
                Ok(response)
                    if response.status() == StatusCode::SERVICE_UNAVAILABLE
                        && response.headers().contains_key(RETRY_AFTER)
                        && !exhausted => {}
                Ok(response) => {
                    if response.status().is_success() {
                        self.set_current(Some(url));
                    }
                    return Ok(response);
                }
                // A write carries its request id: sent again, it is answered once. A read is
                // sent again only to a cluster (other servers given).
                Err(error)
                    if !exhausted
                        && (write || self.servers.len() > 1)
                        && (error.is_connect() || error.is_timeout() || error.is_request()) =>
                {
                    self.set_current(None);
                }
                Err(error) => return Err(error.into()),
            }
            let Some(mut next) = spare else {
                return Err(ClientError::Protocol(
                    "a request that cannot be sent twice".into(),
                ));
            };
            if self.current().is_none() {
                if let Some(server) = self.next_server() {
                    retarget(next.url_mut(), server);
                }
            }
            std::thread::sleep(self.retry.delay(sends - 1));
            sends += 1;
            request = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_share_the_client_id_and_count_up() {
        let base = Url::parse("http://127.0.0.1:1").unwrap();
        let routing = Routing::new(base, Vec::new(), RetryPolicy::default()).unwrap();
        let first = routing.next_request_id();
        let second = routing.clone().next_request_id();
        let (client, seq) = first.split_once('-').unwrap();
        assert_eq!(client.len(), 32);
        assert_eq!(seq, "1");
        assert_eq!(second, format!("{client}-2"));
    }

    #[test]
    fn retries_pause_longer_up_to_the_bound() {
        let policy = RetryPolicy::default();
        let delays: Vec<Duration> = (0..9).map(|retry| policy.delay(retry)).collect();
        assert_eq!(delays[0], Duration::from_millis(50));
        assert_eq!(delays[4], Duration::from_millis(800));
        assert_eq!(delays[8], Duration::from_millis(800));
        let total: Duration = delays.iter().sum();
        assert!(total < Duration::from_secs(6), "{total:?}");
    }

    /// A stand-in node on `listener`: answers its first `answers` connections (one request
    /// each) with `answer(n)`, then stops.
    fn stand_in(
        listener: std::net::TcpListener,
        answers: usize,
        answer: impl Fn(usize) -> String + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        use std::io::{Read, Write};
        std::thread::spawn(move || {
            for n in 0..answers {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut seen = Vec::new();
                let mut buffer = [0u8; 1024];
                while !seen.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => seen.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = stream.write_all(answer(n).as_bytes());
            }
        })
    }

    fn redirect_to(port: u16) -> String {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{port}/v1/x\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    }

    #[test]
    fn a_redirect_loop_during_an_election_is_retried_not_abandoned() {
        // Two nodes name each other the leader for 6 round trips (more than REDIRECTS_MAX),
        // then the first one leads and answers.
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a_port = a.local_addr().unwrap().port();
        let b_port = b.local_addr().unwrap().port();
        let a = stand_in(a, 4, move |n| {
            if n < 3 {
                redirect_to(b_port)
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            }
        });
        let b = stand_in(b, 3, move |_| redirect_to(a_port));
        let base = Url::parse(&format!("http://127.0.0.1:{a_port}")).unwrap();
        let policy = RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        };
        let routing = Routing::new(base.clone(), Vec::new(), policy).unwrap();
        // As the client's own: redirects are followed here, not by reqwest.
        let http = Http::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let request = http
            .post(base.join("/v1/x").unwrap())
            .body("[]")
            .build()
            .unwrap();
        let response = routing.execute(&http, request).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        a.join().unwrap();
        b.join().unwrap();
    }

    #[test]
    fn a_retarget_keeps_path_and_query() {
        let mut url = Url::parse("http://127.0.0.1:7101/v1/streams/s/events?from=3").unwrap();
        retarget(&mut url, &Url::parse("https://10.0.0.2:7443").unwrap());
        assert_eq!(
            url.as_str(),
            "https://10.0.0.2:7443/v1/streams/s/events?from=3"
        );
    }
}
