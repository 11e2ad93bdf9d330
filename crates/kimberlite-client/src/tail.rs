//! [`Tail`]: a stream followed as server-sent events, one item per stream event.
//!
//! Each SSE event is `id: <offset>` and `data: <event JSON>` (the read API's event view), then
//! a blank line; lines starting with `:` are keep-alive comments. Events must come at
//! consecutive offsets from the one asked for: a gap, a repeat or a start elsewhere is a
//! protocol error, not silently passed on.

use std::io::{BufRead, BufReader, Read};

use reqwest::blocking::Response;

use crate::error::ClientError;
use crate::model::{Event, EventJson};

/// Longest SSE line read: a largest event (64 MiB) in base64 inside its JSON, with room.
const LINE_BYTES_MAX: u64 = 128 * 1024 * 1024;

/// A followed stream; made by [`crate::Client::tail`]. Ends when the server closes the
/// stream; an error (a dropped connection, a protocol error) is the last item.
pub struct Tail {
    reader: BufReader<Response>,
    parser: SseParser,
    expected_offset: u64,
    done: bool,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("expected_offset", &self.expected_offset)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Tail {
    /// A tail of `response`, whose first event must be at offset `from`.
    pub(crate) fn new(response: Response, from: u64) -> Self {
        Self {
            reader: BufReader::new(response),
            parser: SseParser::default(),
            expected_offset: from,
            done: false,
        }
    }

    fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut self.reader)
                .take(LINE_BYTES_MAX)
                .read_until(b'\n', &mut line)
                .map_err(ClientError::Broken)?;
            if read == 0 {
                return Ok(None);
            }
            if line.last() != Some(&b'\n') && read as u64 == LINE_BYTES_MAX {
                return Err(ClientError::Protocol(
                    "a tail line is over the longest event's size".into(),
                ));
            }
            let text = std::str::from_utf8(&line)
                .map_err(|_| ClientError::Protocol("a tail line is not UTF-8".into()))?;
            if let Some(sse) = self.parser.line(text) {
                let event = sse.into_event()?;
                if event.offset != self.expected_offset {
                    return Err(ClientError::Protocol(format!(
                        "the tail gave offset {} where {} was due",
                        event.offset, self.expected_offset
                    )));
                }
                self.expected_offset = event.offset + 1;
                return Ok(Some(event));
            }
        }
    }
}

impl Iterator for Tail {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_event().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// One dispatched SSE event.
#[derive(Debug, PartialEq, Eq)]
struct SseEvent {
    id: Option<String>,
    data: String,
}

impl SseEvent {
    fn into_event(self) -> Result<Event, ClientError> {
        let json: EventJson = serde_json::from_str(&self.data)
            .map_err(|error| ClientError::Protocol(format!("a tail event's data: {error}")))?;
        let event = json.into_event()?;
        if let Some(id) = self.id {
            if id.parse::<u64>().ok() != Some(event.offset) {
                return Err(ClientError::Protocol(format!(
                    "a tail event's id {id:?} is not its offset {}",
                    event.offset
                )));
            }
        }
        Ok(event)
    }
}

/// The SSE line protocol (WHATWG HTML, "server-sent events"), the fields this API uses.
#[derive(Debug, Default)]
struct SseParser {
    id: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Takes one line (with or without its line end); a blank line dispatches the event
    /// gathered so far, if it has data.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            let id = self.id.take();
            return self.data.take().map(|data| SseEvent { id, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" => self.id = Some(value.to_owned()),
            _ => {} // `event`, `retry` and unknown fields carry nothing this client uses.
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        text.split_inclusive('\n')
            .filter_map(|line| parser.line(line))
            .collect()
    }

    #[test]
    fn events_comments_and_multi_line_data() {
        let events = parse(
            ": keep-alive\n\nid: 3\ndata: {\"offset\":3,\"payload\":\"a\"}\n\n\
             id:4\r\ndata:x\r\ndata: y\r\nretry: 10\r\n\r\n",
        );
        assert_eq!(
            events,
            vec![
                SseEvent {
                    id: Some("3".into()),
                    data: r#"{"offset":3,"payload":"a"}"#.into()
                },
                SseEvent {
                    id: Some("4".into()),
                    data: "x\ny".into()
                },
            ]
        );
        let event = parse("id: 3\ndata: {\"offset\":3,\"payload_base64\":\"/w==\"}\n\n")
            .pop()
            .unwrap()
            .into_event()
            .unwrap();
        assert_eq!(event.payload, vec![0xff]);
    }

    #[test]
    fn an_id_that_is_not_the_offset_is_refused() {
        let sse = parse("id: 9\ndata: {\"offset\":3,\"payload\":\"a\"}\n\n")
            .pop()
            .unwrap();
        assert!(matches!(sse.into_event(), Err(ClientError::Protocol(_))));
        let sse = parse("data: not json\n\n").pop().unwrap();
        assert!(matches!(sse.into_event(), Err(ClientError::Protocol(_))));
    }
}
