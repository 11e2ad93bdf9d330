//! Why a call failed: the server's own answer (status, `kind`, message, stream, offsets), or
//! a failure before there was one (connection, TLS, a body that is not what the API says).
//!
//! The server answers every error as `{"error": {"kind", "message", "stream"?, "offset"?,
//! "next_offset"?}}` (`crates/kimberlite-server/src/error.rs` has the status table);
//! [`ApiError`] carries those fields as they came, so a program can branch on
//! [`ErrorKind`] and retry an expected-offset conflict from [`ApiError::next_offset`].

use serde::Deserialize;

/// The stable `kind` of a server error, as `docs/SERVER.md` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 401: no key, an unknown key or a revoked key.
    Unauthorized,
    /// 403: the key lacks the permission (said the same way whether the stream exists).
    Forbidden,
    /// 400: a malformed body, name or query.
    BadRequest,
    /// 404: no such stream or route.
    NotFound,
    /// 409: the stream exists, or the expected offset is not the stream's next offset.
    Conflict,
    /// 413: a body, batch or event over a limit.
    TooLarge,
    /// 415: a body of a type the route does not accept.
    UnsupportedMedia,
    /// 500: the stored data is damaged.
    Corrupt,
    /// 503: the store refuses writes (fail-stop) or the server is not ready.
    Unavailable,
    /// 500: anything else the server failed at.
    Internal,
    /// A `kind` this client does not know, or an error answered without the JSON body (a
    /// proxy, a timeout layer): the status or the word the server sent.
    Other(String),
}

impl ErrorKind {
    /// The kind named by the server's `kind` word.
    #[must_use]
    pub fn from_word(word: &str) -> Self {
        match word {
            "unauthorized" => Self::Unauthorized,
            "forbidden" => Self::Forbidden,
            "bad_request" => Self::BadRequest,
            "not_found" => Self::NotFound,
            "conflict" => Self::Conflict,
            "too_large" => Self::TooLarge,
            "unsupported_media" => Self::UnsupportedMedia,
            "corrupt" => Self::Corrupt,
            "unavailable" => Self::Unavailable,
            "internal" => Self::Internal,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The server's word for this kind.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadRequest => "bad_request",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too_large",
            Self::UnsupportedMedia => "unsupported_media",
            Self::Corrupt => "corrupt",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Other(word) => word,
        }
    }
}

/// An error the server answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (HTTP {status}, {})", kind.as_str())]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for programs.
    pub kind: ErrorKind,
    /// What went wrong, for people.
    pub message: String,
    /// The stream concerned, when the server named one.
    pub stream: Option<String>,
    /// The offset concerned (a damaged record), when the server named one.
    pub offset: Option<u64>,
    /// The stream's real next offset, on an expected-offset conflict.
    pub next_offset: Option<u64>,
}

#[derive(Deserialize)]
struct Envelope {
    error: Detail,
}

#[derive(Deserialize)]
struct Detail {
    kind: String,
    message: String,
    stream: Option<String>,
    offset: Option<u64>,
    next_offset: Option<u64>,
}

/// Most bytes of a non-JSON error body kept in the message: enough to recognise a proxy's
/// page, not a whole one.
const RAW_BODY_CHARS_MAX: usize = 200;

impl ApiError {
    /// The error a response with `status` and `body` stands for. A body that is not the
    /// API's error JSON (a proxy's page, a timeout layer's empty answer) still gives an
    /// error: kind from the status, the body's start as message.
    #[must_use]
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error }) => Self {
                status,
                kind: ErrorKind::from_word(&error.kind),
                message: error.message,
                stream: error.stream,
                offset: error.offset,
                next_offset: error.next_offset,
            },
            Err(_) => {
                let text: String = String::from_utf8_lossy(body)
                    .chars()
                    .take(RAW_BODY_CHARS_MAX)
                    .collect();
                let message = if text.trim().is_empty() {
                    format!("the server answered HTTP {status} without a body")
                } else {
                    text.trim().to_owned()
                };
                Self {
                    status,
                    kind: kind_of_status(status),
                    message,
                    stream: None,
                    offset: None,
                    next_offset: None,
                }
            }
        }
    }
}

/// The kind a bare status stands for, for answers without the API's JSON body.
fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::BadRequest,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        413 => ErrorKind::TooLarge,
        415 => ErrorKind::UnsupportedMedia,
        503 => ErrorKind::Unavailable,
        other => ErrorKind::Other(format!("http_{other}")),
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("the server refused: {0}")]
    Api(#[from] ApiError),
    /// No answer: the connection, TLS or a timeout failed.
    #[error("no answer from the server: {}", with_causes(.0))]
    Transport(#[source] reqwest::Error),
    /// The connection broke off while an answer was being read (a tail cut short).
    #[error("the connection broke off: {0}")]
    Broken(#[source] std::io::Error),
    /// The client's configuration cannot be used (a URL, a certificate, a token).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// An argument the client will not send (a stream name that URL normalisation would
    /// turn into another route): nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server answered something that is not what the API promises.
    #[error("the server's answer is not what the API describes: {0}")]
    Protocol(String),
    /// A batch this client will not send as asked (an NDJSON event holding a newline, a
    /// JSON event that is not UTF-8): nothing was sent.
    #[error("the batch cannot be sent as asked: {0}")]
    Batch(String),
}

impl ClientError {
    /// The server's error, when it answered one.
    #[must_use]
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(error) => Some(error),
            _ => None,
        }
    }

    /// The server's error kind, when it answered one.
    #[must_use]
    pub fn kind(&self) -> Option<&ErrorKind> {
        self.api().map(|error| &error.kind)
    }

    /// The stream's real next offset when this is an expected-offset conflict: read from
    /// there and retry.
    #[must_use]
    pub fn conflict_next_offset(&self) -> Option<u64> {
        self.api()
            .filter(|error| error.kind == ErrorKind::Conflict)
            .and_then(|error| error.next_offset)
    }
}

/// `error` and its causes, `: `-separated: reqwest's own message alone says "error sending
/// request" without saying that the connection was refused or the certificate unknown.
fn with_causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        let line = error.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = error.source();
    }
    text
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_decode() {
            Self::Protocol(error.to_string())
        } else if error.is_builder() {
            Self::Config(error.to_string())
        } else {
            Self::Transport(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_error_body_is_read_field_by_field() {
        let body =
            br#"{"error":{"kind":"conflict","message":"expected 3","stream":"s","next_offset":5}}"#;
        let error = ApiError::from_response(409, body);
        assert_eq!(error.kind, ErrorKind::Conflict);
        assert_eq!(error.stream.as_deref(), Some("s"));
        assert_eq!(error.next_offset, Some(5));
        assert_eq!(error.offset, None);
        let error = ClientError::from(error);
        assert_eq!(error.conflict_next_offset(), Some(5));
    }

    #[test]
    fn bodies_that_are_not_the_api_json_still_give_an_error() {
        let error = ApiError::from_response(408, b"");
        assert_eq!(error.kind, ErrorKind::Other("http_408".into()));
        assert!(error.message.contains("408"), "{}", error.message);
        let page = "<html>".repeat(100);
        let error = ApiError::from_response(502, page.as_bytes());
        assert_eq!(error.message.chars().count(), RAW_BODY_CHARS_MAX);
        assert_eq!(
            ApiError::from_response(403, b"no").kind,
            ErrorKind::Forbidden
        );
    }

    #[test]
    fn kind_words_round_trip() {
        for word in [
            "unauthorized",
            "forbidden",
            "bad_request",
            "not_found",
            "conflict",
            "too_large",
            "unsupported_media",
            "corrupt",
            "unavailable",
            "internal",
            "something_new",
        ] {
            assert_eq!(ErrorKind::from_word(word).as_str(), word);
        }
        let other = ClientError::Config("x".into());
        assert_eq!(other.conflict_next_offset(), None);
        assert_eq!(other.kind(), None);
    }
}
