//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/v1/openapi.json`, so clients in any language can be generated from it.

use axum::Json;
use utoipa::OpenApi;

use crate::api;

/// The service's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kimberlite",
        description = "A tamper-evident, hash-chained event store over HTTP. \
        Authenticate with `Authorization: Bearer <token>`. \
        In cluster mode (docs/SERVER.md, \"Cluster mode\"), a write or a linearizable read \
        sent to a follower is answered 307 with `Location` on the leader (same path and \
        query); 503 `no_leader` or `outcome_unknown` come with `Retry-After`; a write may \
        carry `Kimberlite-Request-Id: <client id, hex>-<sequence>` to be answered once when \
        sent again; reads take `consistency=follower` (default `linearizable`) and every read \
        answer carries `Kimberlite-Log-Position: <term>-<node>-<index>`. The routes under \
        `/v1/raft/` are internal (node to node, the cluster secret) and not described here."
    ),
    paths(
        api::streams::create,
        api::streams::list,
        api::streams::show,
        api::append::append,
        api::read::read,
        api::tiles::checkpoint,
        api::tiles::tile,
        api::keys::list,
        api::keys::create,
        api::keys::revoke,
        api::tail::tail,
        api::verify::verify,
        api::proofs::inclusion,
        api::proofs::consistency,
        api::checkpoint::checkpoint,
        api::retain::retain,
        api::receipt::receipt,
        api::witnessed::witnessed,
        api::erase::erase,
        crate::cluster::membership::status,
        crate::cluster::membership::add_learner,
        crate::cluster::membership::change_voters,
        crate::cluster::membership::remove,
    ),
    components(schemas(
        api::streams::CreateStream,
        api::streams::StreamView,
        api::append::AppendResponse,
        api::read::ReadPage,
        api::read::EventView,
        api::read::SealedView,
        api::erase::EraseRequest,
        api::erase::ErasureReceiptView,
        api::keys::CreateKey,
        api::keys::KeyView,
        api::keys::CreatedKey,
        crate::principal::Grant,
        crate::principal::Permission,
        api::verify::VerifyView,
        api::verify::StreamCheck,
        api::verify::ProblemView,
        api::verify::KeptTornTail,
        api::retain::RetainRequest,
        api::retain::RetainView,
        api::witnessed::WitnessedView,
        api::witnessed::CosignerView,
        crate::cluster::membership::ClusterView,
        crate::cluster::membership::Member,
        crate::cluster::membership::NewLearner,
        crate::cluster::membership::Voters,
    ))
)]
pub(crate) struct ApiDoc;

/// `GET /v1/openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
