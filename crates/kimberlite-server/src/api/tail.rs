//! `GET /v1/streams/{stream}/tail`: server-sent events, one per stream event, as they become
//! durable.
//!
//! Each SSE event is `id: <offset>` and `data: <EventView JSON>`, the event as reads show it;
//! an idle tail sends a keep-alive comment every `Limits::tail_keep_alive`. A client that
//! reconnects with `Last-Event-ID` resumes after that offset. The tail reads a page only
//! when the client has taken the previous one (the body is pulled as the connection
//! drains), so what a connection buffers is at most one read page; it waits for new events
//! on the store's durable-event notification (`follow.rs`), holding no thread. It ends when
//! the client goes (the next write fails and the body is dropped), when the server shuts
//! down, or after a read error, sent first as an `event: error` whose data is the error body
//! the other routes answer with.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Extension;
use futures_util::stream::Stream;
use kimberlite::{Event, Offset, StreamId};
use serde::Deserialize;
use tokio::sync::Notify;
use utoipa::IntoParams;

use crate::api::read::{view, PayloadEncoding};
use crate::error::ApiError;
use crate::follow::{Followers, OpenTail};
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::query::ApiQuery;
use crate::state::{AppState, Place};
use crate::touched::Touched;

/// Query of a tail.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct TailQuery {
    /// First offset to send (default: the stream's durable end, so only events appended from
    /// now on). A `Last-Event-ID` header takes precedence: the tail resumes after it.
    from: Option<u64>,
    /// `auto` (default) or `base64`.
    #[serde(default)]
    encoding: PayloadEncoding,
}

/// Follow a stream: server-sent events (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/tail",
    params(("stream" = String, Path), TailQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this offset")),
    responses((status = 200, content_type = "text/event-stream",
        description = "`id: <offset>`, `data: <EventView JSON>` per event; keep-alive comments"),
        (status = 400), (status = 404)))]
pub(crate) async fn tail(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<TailQuery>,
    headers: HeaderMap,
) -> Result<
    (
        Extension<Touched>,
        Sse<impl Stream<Item = Result<SseEvent, Infallible>>>,
    ),
    ApiError,
> {
    check_stream_name(&name)?;
    let place = state.place(&name);
    principal.require(Permission::Read, &name)?;
    let resume = last_event_id(&headers)?;
    let (id, end) = state
        .with_store_at(place, move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            Ok((id, store.head(id)?.next_offset.as_u64()))
        })
        .await?;
    let from = match (resume, query.from) {
        (Some(last), _) => last.saturating_add(1),
        (None, Some(from)) => from,
        (None, None) => end,
    };
    let keep_alive = KeepAlive::new().interval(state.limits().tail_keep_alive);
    let tail = Tail {
        _open: state.followers().open_tail(),
        followers: Arc::clone(state.followers()),
        durable: state.followers().watch(id),
        state,
        place,
        id,
        next: from,
        encoding: query.encoding,
        page: VecDeque::new(),
        done: false,
    };
    let touched = Touched { from, to: from };
    let events = futures_util::stream::unfold(tail, next_event);
    Ok((Extension(touched), Sse::new(events).keep_alive(keep_alive)))
}

/// The offset in a `Last-Event-ID` header, if one was sent.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "invalid Last-Event-ID header: it must be the offset of the last event received"
                    .into(),
            )
        })
}

/// One tail's state between the events it sends.
struct Tail {
    state: AppState,
    followers: Arc<Followers>,
    /// Wakes this tail when the stream's durable head advances.
    durable: Arc<Notify>,
    /// Which store holds the stream.
    place: Place,
    id: StreamId,
    /// The offset to read next.
    next: u64,
    encoding: PayloadEncoding,
    /// Events read and not yet sent: at most one read page.
    page: VecDeque<Event>,
    done: bool,
    /// Counts the tail as open while it lives.
    _open: OpenTail,
}

/// The tail's next SSE event: the next stream event, waiting for one as long as it takes;
/// `None` ends the tail.
async fn next_event(mut tail: Tail) -> Option<(Result<SseEvent, Infallible>, Tail)> {
    loop {
        if let Some(event) = tail.page.pop_front() {
            let sse = sse_event(&event, tail.encoding);
            return Some((Ok(sse), tail));
        }
        if tail.done {
            return None;
        }
        let (followers, durable) = (Arc::clone(&tail.followers), Arc::clone(&tail.durable));
        let notified = durable.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match tail.read_page().await {
            Ok(()) if !tail.page.is_empty() => continue,
            Ok(()) => {}
            Err(error) => {
                tail.done = true;
                return Some((Ok(error_event(&error)), tail));
            }
        }
        if !followers.next_wake(notified).await {
            return None;
        }
    }
}

impl Tail {
    /// Reads the next page (up to the server's read page limits) into `page`.
    async fn read_page(&mut self) -> Result<(), ApiError> {
        let (id, from) = (self.id, self.next);
        let limits = self.state.limits();
        let (max_events, max_bytes) = (limits.max_read_page_events, limits.max_read_page_bytes);
        let mut events = self
            .state
            .with_store_at(self.place, move |store| {
                Ok(store.read(id, Offset::new(from), max_bytes)?)
            })
            .await?;
        events.truncate(max_events.max(1));
        if let Some(last) = events.last() {
            self.next = last.offset.as_u64().saturating_add(1);
        }
        self.page = events.into();
        Ok(())
    }
}

fn sse_event(event: &Event, encoding: PayloadEncoding) -> SseEvent {
    let offset = event.offset.as_u64();
    let data = serde_json::to_string(&view(offset, &event.payload, encoding))
        .unwrap_or_else(|error| format!("{{\"offset\":{offset},\"error\":\"{error}\"}}"));
    SseEvent::default().id(offset.to_string()).data(data)
}

/// An error as the tail's last event: `event: error`, the error body as data.
fn error_event(error: &ApiError) -> SseEvent {
    let (_, kind) = error.status_and_kind();
    let body = serde_json::json!({ "error": { "kind": kind, "message": error.to_string() } });
    SseEvent::default().event("error").data(body.to_string())
}
