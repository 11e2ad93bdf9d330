//! `GET /v1/streams/{stream}/events`: verified reads by offset range, a page at a time.
//!
//! Every event returned has been checked against the hash chain by the store; a damaged
//! record is an error naming its stream and offset, never returned bytes.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use base64::Engine as _;
use kimberlite::Offset;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::query::ApiQuery;
use crate::state::AppState;
use crate::touched::Touched;

/// How payloads are shown.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PayloadEncoding {
    /// `payload` as text when the event is UTF-8, else `payload_base64`.
    #[default]
    Auto,
    /// Always `payload_base64`.
    Base64,
}

/// Query of a read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    /// First offset to return (default 0).
    #[serde(default)]
    from: u64,
    /// Most events to return (default and cap: the server's page limit).
    limit: Option<usize>,
    /// `auto` (default) or `base64`.
    #[serde(default)]
    encoding: PayloadEncoding,
    /// Long poll: when the stream holds no event at `from` yet, wait up to this many
    /// milliseconds (capped by the server's limit) for one, then answer (an empty page when
    /// none came). Default 0: answer at once.
    #[serde(default)]
    wait_ms: u64,
}

/// One event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct EventView {
    /// The event's offset.
    pub(crate) offset: u64,
    /// The payload as text (UTF-8 events, encoding `auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<String>,
    /// The payload in standard base64 (other events, or encoding `base64`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payload_base64: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ReadPage {
    /// The events, in offset order, every one verified.
    pub(crate) events: Vec<EventView>,
    /// The offset to ask for next.
    pub(crate) next_offset: u64,
    /// The stream's durable next offset when the page was read: the page is the last one
    /// when `next_offset` reaches it.
    pub(crate) end_offset: u64,
}

/// Read a page of verified events (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/events",
    params(("stream" = String, Path), ReadQuery),
    responses((status = 200, body = ReadPage), (status = 404), (status = 500, description = "a damaged record, named")))]
pub(crate) async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<(Extension<Touched>, Json<ReadPage>), ApiError> {
    check_stream_name(&name)?;
    principal.require(Permission::Read, &name)?;
    let limits = state.limits();
    let limit = query
        .limit
        .unwrap_or(limits.max_read_page_events)
        .min(limits.max_read_page_events);
    let max_bytes = limits.max_read_page_bytes;
    let wait = Duration::from_millis(query.wait_ms).min(limits.max_read_wait);
    let id = state
        .with_store(move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            store.head(id)?;
            Ok(id)
        })
        .await?;
    if !wait.is_zero() {
        let durable_end =
            || state.with_store(move |store| Ok(store.head(id)?.next_offset.as_u64()));
        state
            .followers()
            .wait_for_events(id, query.from, wait, durable_end)
            .await?;
    }
    let (events, end_offset) = state
        .with_store(move |store| {
            let end = store.head(id)?.next_offset.as_u64();
            let mut events = if limit == 0 || query.from >= end {
                Vec::new()
            } else {
                store.read(id, Offset::from(query.from), max_bytes)?
            };
            events.truncate(limit);
            Ok((events, end))
        })
        .await?;
    let next_offset = events.last().map_or(query.from.min(end_offset), |event| {
        event.offset.as_u64() + 1
    });
    let touched = Touched {
        from: query.from.min(next_offset),
        to: next_offset,
    };
    Ok((
        Extension(touched),
        Json(ReadPage {
            events: events
                .iter()
                .map(|event| view(event.offset.as_u64(), &event.payload, query.encoding))
                .collect(),
            next_offset,
            end_offset,
        }),
    ))
}

/// An event as the API shows it.
pub(crate) fn view(offset: u64, payload: &[u8], encoding: PayloadEncoding) -> EventView {
    let text = match encoding {
        PayloadEncoding::Auto => std::str::from_utf8(payload).ok(),
        PayloadEncoding::Base64 => None,
    };
    EventView {
        offset,
        payload: text.map(str::to_owned),
        payload_base64: match text {
            Some(_) => None,
            None => Some(base64::engine::general_purpose::STANDARD.encode(payload)),
        },
    }
}
