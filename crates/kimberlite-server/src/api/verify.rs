//! `GET /v1/streams/{stream}/verify`: every record of the stream re-read and re-hashed, and
//! the report as JSON: the fields of `kimberlite verify --json` for one stream.
//!
//! The answer is 200 whether the stream is intact or not: `intact` and `problems` say, each
//! problem with its stream, offset, segment, file, byte position and reason. Damage that
//! stops the check itself is reported the same way (`intact: false`, `error`).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use kimberlite::{Anchor, Kimberlite, Problem, StreamReport, VerifyReport};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::state::AppState;
use crate::touched::Touched;

/// A verification report (`kimberlite verify --json`'s fields).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyView {
    /// No problem found.
    intact: bool,
    /// Records checked (data and restart records).
    records_checked: u64,
    /// Restart records among them.
    restart_records_checked: u64,
    /// Segment files checked.
    segments_checked: usize,
    /// Bytes checked.
    bytes_checked: u64,
    /// The stream as checked.
    streams: Vec<StreamCheck>,
    /// Every problem found, in order.
    problems: Vec<ProblemView>,
    /// What recovery repaired or found when the server opened the store.
    recovery: Vec<String>,
    /// Bytes of unfinished writes recovery cut off and kept aside (not part of the log).
    kept_torn_tails: Vec<KeptTornTail>,
    /// Damage that stopped the check itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One stream's part of a report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StreamCheck {
    /// The stream's id.
    id: u64,
    /// Its name.
    name: Option<String>,
    records_checked: u64,
    restart_records_checked: u64,
    segments_checked: usize,
    bytes_checked: u64,
    /// The stream's next offset (events checked).
    next_offset: u64,
    /// Chain hash (hex) of the last event.
    head: Option<String>,
    /// `NAME@EVENTS=HASH`, to keep elsewhere and check later (`verify --anchor`).
    anchor: Option<String>,
}

/// A problem: where the damage is and why.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProblemView {
    /// The stream's id.
    id: u64,
    /// Its name.
    name: Option<String>,
    /// The first offset concerned.
    offset: u64,
    /// The segment, when known.
    segment: Option<u32>,
    /// The file, when known.
    file: Option<String>,
    /// The byte position in the file, when known.
    byte: Option<u64>,
    /// Why it is a problem.
    reason: String,
    /// The whole message.
    message: String,
}

/// Bytes recovery cut off and kept.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeptTornTail {
    file: String,
    bytes: u64,
}

/// Verify a stream: every record re-read and re-hashed (read). 200 with `intact: false` when
/// damaged.
#[utoipa::path(get, path = "/v1/streams/{stream}/verify", params(("stream" = String, Path)),
    responses((status = 200, body = VerifyView), (status = 404)))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<(Extension<Touched>, Json<VerifyView>), ApiError> {
    check_stream_name(&name)?;
    let place = state.place(&name);
    principal.require(Permission::Read, &name)?;
    let view = state
        .with_store_at(place, move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            match store.verify(id) {
                Ok(report) => Ok(report_view(store, &report, None)),
                Err(error) if error.is_corruption() => Ok(report_view(
                    store,
                    &VerifyReport::default(),
                    Some(error.to_string()),
                )),
                Err(error) => Err(error.into()),
            }
        })
        .await?;
    let checked = view.streams.first().map_or(0, |stream| stream.next_offset);
    Ok((
        Extension(Touched {
            from: 0,
            to: checked,
        }),
        Json(view),
    ))
}

fn report_view(store: &Kimberlite, report: &VerifyReport, error: Option<String>) -> VerifyView {
    VerifyView {
        intact: report.is_intact() && error.is_none(),
        records_checked: report.records_checked(),
        restart_records_checked: report.restart_records_checked(),
        segments_checked: report.segments_checked(),
        bytes_checked: report.bytes_checked(),
        streams: report.streams.iter().map(stream_check).collect(),
        problems: report.problems.iter().map(problem_view).collect(),
        recovery: store
            .recovery_report()
            .actions
            .iter()
            .map(|action| format!("recovery {action}"))
            .collect(),
        kept_torn_tails: store
            .kept_torn_tails()
            .into_iter()
            .map(|(path, bytes)| KeptTornTail {
                file: path.display().to_string(),
                bytes,
            })
            .collect(),
        error,
    }
}

fn stream_check(stream: &StreamReport) -> StreamCheck {
    StreamCheck {
        id: stream.stream.as_u64(),
        name: stream.name.clone(),
        records_checked: stream.records_checked,
        restart_records_checked: stream.restart_records_checked,
        segments_checked: stream.segments_checked,
        bytes_checked: stream.bytes_checked,
        next_offset: stream.next_offset.as_u64(),
        head: stream.head.map(|hash| hash.to_string()),
        anchor: stream.name.as_ref().zip(stream.head).map(|(name, hash)| {
            Anchor {
                stream: name.clone(),
                events: stream.next_offset.as_u64(),
                hash,
            }
            .to_string()
        }),
    }
}

fn problem_view(problem: &Problem) -> ProblemView {
    ProblemView {
        id: problem.stream.as_u64(),
        name: problem.name.clone(),
        offset: problem.offset.as_u64(),
        segment: problem.segment,
        file: problem.file.as_ref().map(|file| file.display().to_string()),
        byte: problem.position,
        reason: problem.reason.clone(),
        message: problem.message.clone(),
    }
}
