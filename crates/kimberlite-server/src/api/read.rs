//! `GET /v1/streams/{stream}/events`: verified reads by offset range, a page at a time.
//!
//! Every event returned has been checked against the hash chain by the store; a damaged
//! record is an error naming its stream and offset, never returned bytes.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use base64::Engine as _;
use kimberlite::sealed::{envelope, Content, Erasures, OpenedEvent, SubjectKeys};
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
    /// Set instead of a payload for an event sealed for a data subject that this reader
    /// cannot open: never its encrypted bytes (`docs/COMPLIANCE.md`, "Erasure").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sealed: Option<SealedView>,
}

/// A sealed event the answer does not open.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct SealedView {
    /// `sealed` (the server has no master key), `erased` or `unreadable`.
    pub(crate) state: String,
    /// Its data key's id (hex), when the envelope names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_id: Option<String>,
    /// Its Merkle leaf hash (hex): what its inclusion proofs prove.
    pub(crate) leaf_hash: String,
    /// For an erased event: when it was erased, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) erased_on: Option<String>,
    /// For an erased event: the erasure event's offset in `_erasure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) erasure_offset: Option<u64>,
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
    let place = state.place(&name);
    principal.require(Permission::Read, &name)?;
    let limits = state.limits();
    let limit = query
        .limit
        .unwrap_or(limits.max_read_page_events)
        .min(limits.max_read_page_events);
    let max_bytes = limits.max_read_page_bytes;
    let wait = Duration::from_millis(query.wait_ms).min(limits.max_read_wait);
    let id = state
        .with_store_at(place, move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            store.head(id)?;
            Ok(id)
        })
        .await?;
    if !wait.is_zero() {
        let durable_end =
            || state.with_store_at(place, move |store| Ok(store.head(id)?.next_offset.as_u64()));
        state
            .followers()
            .wait_for_events(id, query.from, wait, durable_end)
            .await?;
    }
    let keys = state.subject_keys();
    let (events, end_offset) = state
        .with_store_at(place, move |store| {
            let end = store.head(id)?.next_offset.as_u64();
            let mut events = if limit == 0 || query.from >= end {
                Vec::new()
            } else {
                store.read(id, Offset::from(query.from), max_bytes)?
            };
            events.truncate(limit);
            Ok((open_events(store, keys.as_deref(), id, events)?, end))
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
                .map(|event| view_opened(event, query.encoding))
                .collect(),
            next_offset,
            end_offset,
        }),
    ))
}

/// `events` as this server's reader sees them: opened with its master key, or said to be
/// sealed or erased.
fn open_events(
    store: &kimberlite::Kimberlite,
    keys: Option<&SubjectKeys>,
    id: kimberlite::StreamId,
    events: Vec<kimberlite::Event>,
) -> Result<Vec<OpenedEvent>, ApiError> {
    Ok(match keys {
        Some(keys) => events
            .into_iter()
            .map(|event| keys.open_event(id, event))
            .collect::<Result<_, _>>()?,
        None => {
            let erasures = Erasures::load(store)?;
            events.into_iter().map(|e| erasures.open_event(e)).collect()
        }
    })
}

/// An opened event as the API shows it.
fn view_opened(event: &OpenedEvent, encoding: PayloadEncoding) -> EventView {
    let offset = event.offset.as_u64();
    let (state, key_id, erasure) = match &event.content {
        Content::Plain(payload) | Content::Opened { payload, .. } => {
            return view_bytes(offset, payload, encoding)
        }
        Content::Sealed { key_id } => ("sealed", Some(*key_id), None),
        Content::Erased { key_id, erasure } => ("erased", Some(*key_id), Some(erasure)),
        Content::Unreadable { key_id, .. } => ("unreadable", *key_id, None),
        _ => ("unreadable", None, None),
    };
    EventView {
        offset,
        payload: None,
        payload_base64: None,
        sealed: Some(SealedView {
            state: state.to_owned(),
            key_id: key_id.map(|key_id| key_id.to_hex()),
            leaf_hash: event.leaf_hash.to_string(),
            erased_on: erasure.map(|e| crate::rfc3339(e.erased_at_unix_s)),
            erasure_offset: erasure.map(|e| e.offset.as_u64()),
        }),
    }
}

/// An event as the API shows it; a sealed one (tails) as sealed, never its envelope.
pub(crate) fn view(offset: u64, payload: &[u8], encoding: PayloadEncoding) -> EventView {
    if let Some(key_id) = envelope::key_id_of(payload) {
        return EventView {
            offset,
            payload: None,
            payload_base64: None,
            sealed: Some(SealedView {
                state: "sealed".to_owned(),
                key_id: key_id.ok().map(|key_id| key_id.to_hex()),
                leaf_hash: kimberlite::proof::event_leaf_hash(offset, payload).to_string(),
                erased_on: None,
                erasure_offset: None,
            }),
        };
    }
    view_bytes(offset, payload, encoding)
}

/// A payload's bytes as the API shows them.
fn view_bytes(offset: u64, payload: &[u8], encoding: PayloadEncoding) -> EventView {
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
        sealed: None,
    }
}
