//! What a request touched: the offsets of the events it read or wrote.
//!
//! Handlers that read or write events put a [`Touched`] in their response's extensions; the
//! access log takes the offsets from there, so handlers need not know about the log.

/// The half-open offset range `from..to` of the events a request read or wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Touched {
    /// First offset touched.
    pub(crate) from: u64,
    /// One past the last offset touched (`from` when none was).
    pub(crate) to: u64,
}

/// The stream a request named outside its path (a stream created from a JSON body, or the one
/// an error answer names), kept in the response's extensions for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedStream(pub(crate) String);
