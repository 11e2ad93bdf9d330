//! Append bodies: a batch of events in one of three encodings, picked by `Content-Type`.
//!
//! | Content-Type                    | one event is                                         |
//! |---------------------------------|------------------------------------------------------|
//! | `application/json`              | an element of a JSON array: a string is stored as its |
//! |                                 | UTF-8 text, any other value as its compact JSON      |
//! | `application/x-ndjson`          | a line (`\n`-terminated; a final newline is optional) |
//! | `application/octet-stream`      | a 4-byte big-endian length, then that many bytes     |
//!
//! Decoding is pure and all-or-nothing: a malformed body gives one error and no events.

use bytes::Bytes;

use crate::error::ApiError;

/// The body encodings an append accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchEncoding {
    Json,
    NdJson,
    LengthPrefixed,
}

impl BatchEncoding {
    /// The encoding a `Content-Type` value names (parameters such as `charset` ignored).
    pub(crate) fn from_content_type(value: Option<&str>) -> Result<Self, ApiError> {
        let media = value
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Ok(Self::Json),
            "application/x-ndjson" | "application/jsonl" => Ok(Self::NdJson),
            "application/octet-stream" => Ok(Self::LengthPrefixed),
            _ => Err(ApiError::UnsupportedMedia(format!(
                "an append body is application/json (an array), application/x-ndjson or \
                 application/octet-stream (length-prefixed), not {:?}",
                value.unwrap_or("nothing")
            ))),
        }
    }
}

/// Bodies up to this size are copied before their events are cut from them (see
/// [`decode_batch`]).
const COPIED_BODY_MAX: usize = 64 * 1024;

/// The events of `body`, at most `max_events` of them, each at most `max_event_bytes`.
///
/// A small body is copied first, once: it is usually a slice of the connection's read
/// buffer, and the store keeps each event's bytes until its Merkle tree has hashed them
/// (thousands of events later), so events cut from that buffer would keep every request's
/// whole buffer alive and make the connection allocate a fresh one per request
/// (`docs/PERFORMANCE.md`, "Design decisions").
pub(crate) fn decode_batch(
    encoding: BatchEncoding,
    body: &Bytes,
    max_events: usize,
    max_event_bytes: usize,
) -> Result<Vec<Bytes>, ApiError> {
    let copied;
    let body = if body.len() <= COPIED_BODY_MAX {
        copied = Bytes::copy_from_slice(body);
        &copied
    } else {
        body
    };
    let events = match encoding {
        BatchEncoding::Json => decode_json(body)?,
        BatchEncoding::NdJson => decode_lines(body),
        BatchEncoding::LengthPrefixed => decode_length_prefixed(body)?,
    };
    if events.is_empty() {
        return Err(ApiError::BadRequest("the batch holds no events".into()));
    }
    if events.len() > max_events {
        return Err(ApiError::TooLarge(format!(
            "the batch holds {} events, over the limit of {max_events} per request",
            events.len()
        )));
    }
    if let Some((index, event)) = events
        .iter()
        .enumerate()
        .find(|(_, event)| event.len() > max_event_bytes)
    {
        return Err(ApiError::TooLarge(format!(
            "event {index} of the batch is {} bytes, over the limit of {max_event_bytes}",
            event.len()
        )));
    }
    Ok(events)
}

fn decode_json(body: &Bytes) -> Result<Vec<Bytes>, ApiError> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|error| {
        ApiError::BadRequest(format!("the body is not a JSON array of events: {error}"))
    })?;
    values
        .into_iter()
        .map(|value| match value {
            serde_json::Value::String(text) => Ok(Bytes::from(text)),
            other => serde_json::to_vec(&other)
                .map(Bytes::from)
                .map_err(|error| ApiError::Internal(format!("re-encoding an event: {error}"))),
        })
        .collect()
}

fn decode_lines(body: &Bytes) -> Vec<Bytes> {
    let text = body.strip_suffix(b"\n").unwrap_or(body);
    if text.is_empty() {
        return Vec::new();
    }
    let mut events = Vec::new();
    let mut start = 0;
    for (at, byte) in text.iter().enumerate() {
        if *byte == b'\n' {
            events.push(line(body, start, at));
            start = at + 1;
        }
    }
    events.push(line(body, start, text.len()));
    events
}

/// One line of `body`, without a `\r` before its newline.
fn line(body: &Bytes, start: usize, end: usize) -> Bytes {
    let end = if end > start && body.get(end - 1) == Some(&b'\r') {
        end - 1
    } else {
        end
    };
    body.slice(start..end)
}

fn decode_length_prefixed(body: &Bytes) -> Result<Vec<Bytes>, ApiError> {
    let mut events = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let prefix: [u8; 4] = body
            .get(at..at + 4)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| truncated(events.len(), at, "its 4-byte length"))?;
        let len = u32::from_be_bytes(prefix) as usize;
        let start = at + 4;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= body.len())
            .ok_or_else(|| truncated(events.len(), at, "its payload"))?;
        events.push(body.slice(start..end));
        at = end;
    }
    Ok(events)
}

fn truncated(index: usize, at: usize, what: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "the length-prefixed body ends inside event {index} (at byte {at}): {what} is cut"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(encoding: BatchEncoding, body: &[u8]) -> Result<Vec<Bytes>, ApiError> {
        decode_batch(encoding, &Bytes::copy_from_slice(body), 10, 16)
    }

    #[test]
    fn events_of_a_small_body_hold_none_of_its_buffer_and_large_bodies_are_not_copied() {
        let inside = |event: &Bytes, buffer: &Bytes| {
            let range = buffer.as_ptr_range();
            range.contains(&event.as_ptr())
        };
        for (size, copied) in [(300, true), (COPIED_BODY_MAX + 4, false)] {
            let mut body = (size as u32 - 4).to_be_bytes().to_vec();
            body.resize(size, b'x');
            let buffer = Bytes::from(body);
            let events = decode_batch(BatchEncoding::LengthPrefixed, &buffer, 10, size).unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].len(), size - 4);
            assert_eq!(
                inside(&events[0], &buffer),
                !copied,
                "a body of {size} bytes"
            );
        }
    }

    #[test]
    fn json_strings_are_text_and_other_values_compact_json() {
        let events = decode(BatchEncoding::Json, br#"["a b", {"x": 1}, 7]"#).unwrap();
        assert_eq!(
            events,
            vec![
                Bytes::from("a b"),
                Bytes::from(r#"{"x":1}"#),
                Bytes::from("7")
            ]
        );
    }

    #[test]
    fn ndjson_lines_with_or_without_final_newline() {
        for body in [&b"a\r\nb\n\nc\n"[..], b"a\r\nb\n\nc"] {
            let events = decode(BatchEncoding::NdJson, body).unwrap();
            assert_eq!(
                events,
                vec![
                    Bytes::from("a"),
                    Bytes::from("b"),
                    Bytes::new(),
                    Bytes::from("c")
                ]
            );
        }
    }

    #[test]
    fn length_prefixed_events_and_cut_bodies() {
        let events = decode(BatchEncoding::LengthPrefixed, b"\0\0\0\x02hi\0\0\0\0").unwrap();
        assert_eq!(events, vec![Bytes::from("hi"), Bytes::new()]);
        for cut in [&b"\0\0\0"[..], b"\0\0\0\x03hi"] {
            let error = decode(BatchEncoding::LengthPrefixed, cut).unwrap_err();
            assert!(error.to_string().contains("ends inside event 0"), "{error}");
        }
    }

    #[test]
    fn limits_and_empty_batches_are_refused() {
        assert!(matches!(
            decode(BatchEncoding::Json, b"[]"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            decode(BatchEncoding::NdJson, b""),
            Err(ApiError::BadRequest(_))
        ));
        let eleven = format!("[{}]", ["1"; 11].join(","));
        assert!(matches!(
            decode(BatchEncoding::Json, eleven.as_bytes()),
            Err(ApiError::TooLarge(_))
        ));
        assert!(matches!(
            decode(BatchEncoding::Json, br#"["0123456789abcdefX"]"#),
            Err(ApiError::TooLarge(_))
        ));
        assert!(matches!(
            decode(BatchEncoding::Json, b"{\"a\":1}"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BatchEncoding::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            BatchEncoding::Json
        );
        assert!(matches!(
            BatchEncoding::from_content_type(Some("text/plain")),
            Err(ApiError::UnsupportedMedia(_))
        ));
        assert!(matches!(
            BatchEncoding::from_content_type(None),
            Err(ApiError::UnsupportedMedia(_))
        ));
    }
}
