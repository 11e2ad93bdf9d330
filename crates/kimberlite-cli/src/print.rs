//! Printing an event as `read` and `tail` do: its text on a line, or with `--json` a JSON
//! object holding its offset and its payload (as a string when it is UTF-8, as hex
//! otherwise). As text, an event that is not UTF-8 is refused with an error pointing to
//! `--json`: a replacement character would print a byte that is not stored.

use std::io::Write;

use kimberlite::Event;

use crate::error::CliError;

/// Why an event was not printed.
#[derive(Debug, PartialEq, Eq)]
pub enum Unprinted {
    /// Standard output is closed.
    Closed,
    /// Plain text output was asked for and the payload is not UTF-8.
    NotText,
}

impl From<std::io::Error> for Unprinted {
    fn from(_: std::io::Error) -> Self {
        Unprinted::Closed
    }
}

/// Prints `event` as one line. As text, a payload that is not UTF-8 is refused rather than
/// printed with replacement characters, which a reader could take for the stored bytes.
pub fn print_event(out: &mut impl Write, event: &Event, json: bool) -> Result<(), Unprinted> {
    if !json {
        let text = std::str::from_utf8(&event.payload).map_err(|_| Unprinted::NotText)?;
        out.write_all(text.as_bytes())?;
        return Ok(out.write_all(b"\n")?);
    }
    let line = match std::str::from_utf8(&event.payload) {
        Ok(text) => serde_json::json!({ "offset": event.offset.as_u64(), "payload": text }),
        Err(_) => serde_json::json!({
            "offset": event.offset.as_u64(),
            "payload_hex": hex(&event.payload),
        }),
    };
    Ok(writeln!(out, "{line}")?)
}

/// The error for an event plain text output cannot show as stored.
pub fn not_text(event: &Event, stream: &str, command: &str) -> CliError {
    CliError::usage_hint(
        format!(
            "the event at offset {} of {stream:?} is not UTF-8 text ({} bytes); it is not \
             printed as text, where a replacement character would stand for bytes that are not \
             stored; the events before it were printed",
            event.offset,
            event.payload.len()
        ),
        format!(
            "use `kimberlite {command} --json`: a binary event prints as \"payload_hex\", its exact bytes"
        ),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kimberlite::{Bytes, Offset};

    #[test]
    fn binary_events_print_as_hex_json() {
        let mut out = Vec::new();
        let event = Event {
            offset: Offset::new(3),
            payload: Bytes::from_static(&[0xff, 0x00]),
        };
        print_event(&mut out, &event, true).unwrap();
        assert_eq!(out, b"{\"offset\":3,\"payload_hex\":\"ff00\"}\n");
        out.clear();
        assert_eq!(
            print_event(&mut out, &event, false),
            Err(Unprinted::NotText)
        );
        assert!(
            out.is_empty(),
            "nothing of a binary event is printed as text"
        );
        let text = Event {
            offset: Offset::new(4),
            payload: Bytes::from_static("caf\u{e9}".as_bytes()),
        };
        print_event(&mut out, &text, false).unwrap();
        assert_eq!(out, "caf\u{e9}\n".as_bytes());
    }
}
