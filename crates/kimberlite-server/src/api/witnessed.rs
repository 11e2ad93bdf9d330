//! `GET /v1/streams/{stream}/checkpoints/witnessed`: the latest checkpoint of the stream
//! whose witnesses' valid cosignatures meet its witness policy's quorum (`docs/SERVER.md`,
//! "Witnesses"): the note with the log's signature and the cosignatures, and who cosigned.
//! A stream without a policy, or none of whose checkpoints is witnessed yet, is 404.

use axum::extract::{Path, State};
use axum::Json;
use kimberlite::proof::WitnessPolicy;
use kimberlite::SignedCheckpoint;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names::check_stream_name;
use crate::principal::{Permission, Principal};
use crate::state::AppState;

/// A witnessed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WitnessedView {
    /// The stream.
    stream: String,
    /// Events the checkpoint covers.
    tree_size: u64,
    /// Whether the valid cosignatures meet the quorum (always, on this route).
    witnessed: bool,
    /// Cosignatures the policy requires.
    quorum: usize,
    /// The policy's witnesses.
    witnesses: usize,
    /// The witnesses whose cosignature verified, with when they cosigned.
    cosigned_by: Vec<CosignerView>,
    /// The C2SP signed note: the checkpoint, the log's signature, then the cosignatures.
    checkpoint: String,
}

/// A witness that cosigned.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CosignerView {
    /// The witness's name.
    witness: String,
    /// When it cosigned, POSIX seconds.
    timestamp: u64,
}

/// The latest witnessed checkpoint of the stream (read).
#[utoipa::path(get, path = "/v1/streams/{stream}/checkpoints/witnessed",
    params(("stream" = String, Path)),
    responses((status = 200, body = WitnessedView),
        (status = 404, description = "no such stream, no witness policy for it, or no checkpoint witnessed yet")))]
pub(crate) async fn witnessed(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<WitnessedView>, ApiError> {
    check_stream_name(&name)?;
    principal.require(Permission::Read, &name)?;
    let policy = state
        .witnessing()
        .and_then(|witnessing| witnessing.policy(&name))
        .cloned()
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "stream {name:?} has no witness policy: start the server with \
                 `--witness-policy [PATTERN=]FILE`"
            ))
        })?;
    let kept = latest_witnessed(&state, name.clone(), &policy)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no checkpoint of stream {name:?} is witnessed yet ({} cosignatures needed)",
                policy.threshold()
            ))
        })?;
    let cosigned_by = policy
        .check(&kept.note)
        .unwrap_or_default()
        .into_iter()
        .map(|cosigned| CosignerView {
            witness: cosigned.witness,
            timestamp: cosigned.timestamp,
        })
        .collect();
    Ok(Json(WitnessedView {
        stream: name,
        tree_size: kept.tree_size,
        witnessed: true,
        quorum: policy.threshold(),
        witnesses: policy.witnesses().len(),
        cosigned_by,
        checkpoint: kept.note,
    }))
}

/// The latest kept checkpoint of stream `name` whose cosignatures meet `policy`.
pub(crate) async fn latest_witnessed(
    state: &AppState,
    name: String,
    policy: &std::sync::Arc<WitnessPolicy>,
) -> Result<Option<SignedCheckpoint>, ApiError> {
    let policy = std::sync::Arc::clone(policy);
    let place = state.place(&name);
    state
        .with_store_at(place, move |store| {
            let id = store
                .stream(&name)
                .ok_or(kimberlite::Error::StreamNotFound { name })?;
            Ok(store
                .latest_cosigned_checkpoint_where(id, |kept| policy.check(&kept.note).is_ok())?)
        })
        .await
}
