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
        Authenticate with `Authorization: Bearer <token>`."
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
    ))
)]
pub(crate) struct ApiDoc;

/// `GET /v1/openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
