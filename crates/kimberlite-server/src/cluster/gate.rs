//! The cluster gate: the middleware that, in cluster mode, sends writes to the leader (307,
//! or 503 `no_leader`), makes reads linearizable unless `?consistency=follower` asks for the
//! replica as it is, and names the log position every read answer reflects.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kimberlite_raft::openraft::error::{CheckIsLeaderError, RaftError};
use kimberlite_raft::NodeId;

use super::node::{log_position, Cluster, LOG_POSITION_HEADER};
use crate::access_writer::ACCESS_STREAM;
use crate::error::{ApiError, LeaderUrl};
use crate::state::AppState;

/// What a request asks of the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Writes the replicated state: only the leader may.
    Write,
    /// Reads the replica's streams.
    Read,
    /// Node-local (keys, the access log, health, metrics, the cluster's status).
    Local,
}

fn classify(method: &Method, path: &str) -> Kind {
    let replicated_stream = |rest: &str| {
        let name = rest.split('/').next().unwrap_or_default();
        name != ACCESS_STREAM
    };
    if let Some(rest) = path.strip_prefix("/v1/cluster/") {
        return if rest.is_empty() || method == Method::GET {
            Kind::Local
        } else {
            Kind::Write
        };
    }
    if method == Method::POST {
        if path == "/v1/streams" {
            return Kind::Write;
        }
        if let Some(rest) = path.strip_prefix("/v1/streams/") {
            if rest.ends_with("/events") && replicated_stream(rest) {
                return Kind::Write;
            }
        }
        return Kind::Local;
    }
    if method == Method::GET {
        if path == "/v1/streams" {
            return Kind::Read;
        }
        if let Some(rest) = path.strip_prefix("/v1/streams/") {
            if replicated_stream(rest) {
                return Kind::Read;
            }
        }
    }
    Kind::Local
}

/// The request without its `consistency` parameter, and whether it asked for a follower
/// read; a value other than `follower` or `linearizable` is a 400.
fn take_consistency(mut request: Request) -> Result<(Request, bool), ApiError> {
    let Some(query) = request.uri().query() else {
        return Ok((request, false));
    };
    let mut follower = false;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("consistency", "follower")) => follower = true,
            Some(("consistency", "linearizable")) => follower = false,
            Some(("consistency", other)) => {
                return Err(ApiError::BadRequest(format!(
                    "consistency={other:?}: expected `linearizable` (the default) or `follower`"
                )))
            }
            _ if pair == "consistency" => {
                return Err(ApiError::BadRequest(
                    "consistency needs a value: `linearizable` or `follower`".into(),
                ))
            }
            _ => kept.push(pair),
        }
    }
    let path = request.uri().path();
    let path_and_query = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|error| ApiError::BadRequest(format!("the request's URI: {error}")))?,
    );
    *request.uri_mut() =
        Uri::from_parts(parts).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    Ok((request, follower))
}

/// An answer sending the client to `leader` (307, same path and query), or 503 `no_leader`.
fn to_leader(cluster: &Cluster, leader: Option<NodeId>, path_and_query: &str) -> Response {
    let url = leader
        .filter(|&leader| leader != cluster.node().id())
        .and_then(|leader| cluster.url_of(leader));
    locate(ApiError::NotLeader { url }.into_response(), path_and_query)
}

/// Gives a redirect to the leader its `Location`: the leader's URL, this request's path and
/// query (the lean append route's answers too, on a leader).
pub(crate) fn locate(mut response: Response, path_and_query: &str) -> Response {
    if let Some(LeaderUrl(url)) = response.extensions().get::<LeaderUrl>().cloned() {
        if let Ok(location) = HeaderValue::from_str(&format!("{url}{path_and_query}")) {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    response
}

/// The gate (a no-op outside cluster mode).
pub(crate) async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.cluster() else {
        return next.run(request).await;
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|path_and_query| path_and_query.as_str().to_owned())
        .unwrap_or_default();
    match classify(request.method(), request.uri().path()) {
        Kind::Local => {
            let is_stream_read =
                request.method() == Method::GET && request.uri().path().starts_with("/v1/streams/");
            if !is_stream_read {
                return next.run(request).await;
            }
            // `_access` is node-local: any consistency is this node's log.
            match take_consistency(request) {
                Ok((request, _)) => next.run(request).await,
                Err(error) => error.into_response(),
            }
        }
        Kind::Write => {
            if !cluster.is_leader() {
                return to_leader(&cluster, cluster.leader(), &path_and_query);
            }
            locate(next.run(request).await, &path_and_query)
        }
        Kind::Read => {
            let (request, follower) = match take_consistency(request) {
                Ok(taken) => taken,
                Err(error) => return error.into_response(),
            };
            if !follower {
                match cluster.node().raft().ensure_linearizable().await {
                    Ok(_) => {}
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                        return to_leader(&cluster, forward.leader_id, &path_and_query)
                    }
                    Err(error) => {
                        return ApiError::Unavailable(format!(
                            "this node could not confirm it leads, for a linearizable read \
                             ({error}): retry, or read with ?consistency=follower"
                        ))
                        .into_response()
                    }
                }
            }
            // Read before the handler runs: the answer reflects at least this position.
            let position = log_position(cluster.applied());
            let mut response = locate(next.run(request).await, &path_and_query);
            if let Ok(value) = HeaderValue::from_str(&position) {
                response.headers_mut().insert(LOG_POSITION_HEADER, value);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_what_they_touch() {
        let cases = [
            (Method::POST, "/v1/streams", Kind::Write),
            (Method::POST, "/v1/streams/ehr/events", Kind::Write),
            (Method::POST, "/v1/streams/_access/events", Kind::Local),
            (Method::POST, "/v1/streams/ehr/retain", Kind::Local),
            (Method::POST, "/v1/erasures", Kind::Local),
            (Method::POST, "/v1/keys", Kind::Local),
            (Method::GET, "/v1/streams", Kind::Read),
            (Method::GET, "/v1/streams/ehr", Kind::Read),
            (Method::GET, "/v1/streams/ehr/verify", Kind::Read),
            (Method::GET, "/v1/streams/_access/events", Kind::Local),
            (Method::GET, "/v1/cluster", Kind::Local),
            (Method::POST, "/v1/cluster/learners", Kind::Write),
            (Method::POST, "/v1/cluster/voters", Kind::Write),
            (Method::DELETE, "/v1/cluster/nodes/3", Kind::Write),
            (Method::GET, "/healthz", Kind::Local),
        ];
        for (method, path, kind) in cases {
            assert_eq!(classify(&method, path), kind, "{method} {path}");
        }
    }

    #[test]
    fn the_consistency_parameter_is_taken_out() {
        let request = |uri: &str| {
            Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let (taken, follower) = take_consistency(request(
            "/v1/streams/s/events?from=2&consistency=follower&limit=3",
        ))
        .unwrap();
        assert!(follower);
        assert_eq!(taken.uri(), "/v1/streams/s/events?from=2&limit=3");
        let (taken, follower) =
            take_consistency(request("/v1/streams/s/events?consistency=linearizable")).unwrap();
        assert!(!follower);
        assert_eq!(taken.uri(), "/v1/streams/s/events");
        assert!(take_consistency(request("/v1/streams/s/events?consistency=eventual")).is_err());
        assert!(take_consistency(request("/v1/streams/s/events?consistency")).is_err());
    }
}
