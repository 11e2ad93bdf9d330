//! Append bodies: a batch of events in one of the three encodings the server accepts.
//!
//! | [`Encoding`]   | Content-Type               | one event is                               |
//! |----------------|----------------------------|--------------------------------------------|
//! | `Binary`       | `application/octet-stream` | a 4-byte big-endian length, then its bytes |
//! | `Json`         | `application/json`         | a string of a JSON array (stored as text)  |
//! | `NdJson`       | `application/x-ndjson`     | a line                                     |
//!
//! `Binary` carries any bytes exactly and is the default. The two text encodings are for
//! text events; an event they cannot carry exactly (a newline in an NDJSON line, bytes that
//! are not UTF-8 in JSON) is refused here, before anything is sent, rather than stored as
//! something else.

use crate::error::ClientError;

/// How a batch is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    /// Length-prefixed binary: any bytes, exactly.
    #[default]
    Binary,
    /// A JSON array of strings: UTF-8 events.
    Json,
    /// One event per line: UTF-8 events without `\n` (nor a trailing `\r`, which the server
    /// drops as part of a CRLF line end).
    NdJson,
}

impl Encoding {
    /// The `Content-Type` this encoding is sent with.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Binary => "application/octet-stream",
            Self::Json => "application/json",
            Self::NdJson => "application/x-ndjson",
        }
    }
}

/// The body of a batch of `events` in `encoding`; refuses what the encoding cannot carry.
pub fn encode<E: AsRef<[u8]>>(encoding: Encoding, events: &[E]) -> Result<Vec<u8>, ClientError> {
    if events.is_empty() {
        return Err(ClientError::Batch("the batch holds no events".into()));
    }
    match encoding {
        Encoding::Binary => encode_binary(events),
        Encoding::Json => {
            let texts = texts(events, "JSON")?;
            serde_json::to_vec(&texts)
                .map_err(|error| ClientError::Batch(format!("encoding JSON: {error}")))
        }
        Encoding::NdJson => {
            let texts = texts(events, "NDJSON")?;
            if let Some(index) = texts
                .iter()
                .position(|text| text.contains('\n') || text.ends_with('\r'))
            {
                return Err(ClientError::Batch(format!(
                    "event {index} holds a line break, which NDJSON would split or cut; \
                     send it as Binary"
                )));
            }
            let mut body = texts.join("\n").into_bytes();
            body.push(b'\n');
            Ok(body)
        }
    }
}

fn encode_binary<E: AsRef<[u8]>>(events: &[E]) -> Result<Vec<u8>, ClientError> {
    let total: usize = events.iter().map(|event| event.as_ref().len() + 4).sum();
    let mut body = Vec::with_capacity(total);
    for (index, event) in events.iter().enumerate() {
        let event = event.as_ref();
        let length = u32::try_from(event.len()).map_err(|_| {
            ClientError::Batch(format!(
                "event {index} is {} bytes, over a 4-byte length",
                event.len()
            ))
        })?;
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(event);
    }
    Ok(body)
}

fn texts<'a, E: AsRef<[u8]>>(events: &'a [E], what: &str) -> Result<Vec<&'a str>, ClientError> {
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            std::str::from_utf8(event.as_ref()).map_err(|_| {
                ClientError::Batch(format!(
                    "event {index} is not UTF-8 text, which {what} cannot carry exactly; \
                     send it as Binary"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_encoding_frames_events_as_the_server_reads_them() {
        let events = ["a b", "\u{e9}"];
        assert_eq!(
            encode(Encoding::Binary, &events).unwrap(),
            b"\0\0\0\x03a b\0\0\0\x02\xc3\xa9".to_vec()
        );
        assert_eq!(
            encode(Encoding::Json, &events).unwrap(),
            "[\"a b\",\"\u{e9}\"]".as_bytes().to_vec()
        );
        assert_eq!(
            encode(Encoding::NdJson, &events).unwrap(),
            "a b\n\u{e9}\n".as_bytes().to_vec()
        );
    }

    #[test]
    fn what_an_encoding_cannot_carry_is_refused_before_sending() {
        let binary: [&[u8]; 1] = [b"\xff"];
        assert!(matches!(
            encode(Encoding::Json, &binary),
            Err(ClientError::Batch(_))
        ));
        assert!(matches!(
            encode(Encoding::NdJson, &binary),
            Err(ClientError::Batch(_))
        ));
        for text in ["two\nlines", "cr\r"] {
            assert!(matches!(
                encode(Encoding::NdJson, &[text]),
                Err(ClientError::Batch(_))
            ));
        }
        let none: [&str; 0] = [];
        assert!(matches!(
            encode(Encoding::Binary, &none),
            Err(ClientError::Batch(_))
        ));
        assert_eq!(
            encode(Encoding::Binary, &binary).unwrap(),
            b"\0\0\0\x01\xff"
        );
    }
}
