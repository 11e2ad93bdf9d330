//! Receipts: [`Client::receipt`] asks `/v1/streams/{stream}/receipt` for an event's receipt
//! (a C2SP tlog proof) that an auditor checks offline.

use reqwest::Method;

use crate::client::Client;
use crate::error::ClientError;

/// The header saying whether a receipt's checkpoint is cosigned by witnesses.
const WITNESSED_HEADER: &str = "kimberlite-witnessed";
/// The header giving a receipt's checkpoint size.
const TREE_SIZE_HEADER: &str = "kimberlite-tree-size";

/// A receipt as the server answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedReceipt {
    /// The receipt's text (`c2sp.org/tlog-proof@v1`…), for `kimberlite_proof::verify_receipt`.
    pub text: String,
    /// True when the server built it on a checkpoint witnesses cosigned; false when on one it
    /// signed for this answer (no witness has seen it yet). The server's word, not evidence:
    /// a witness policy checks the cosignatures themselves.
    pub witnessed: bool,
    /// The checkpoint's tree size, as the server says.
    pub tree_size: Option<u64>,
}

impl Client {
    /// `GET /v1/streams/{stream}/receipt?offset=N`: a receipt for the event at `offset`.
    pub fn receipt(&self, stream: &str, offset: u64) -> Result<ServedReceipt, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "streams", stream, "receipt"])?
            .query(&[("offset", offset)]);
        let response = self.send(request)?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let witnessed = header(WITNESSED_HEADER).as_deref() == Some("true");
        let tree_size = header(TREE_SIZE_HEADER).and_then(|size| size.parse().ok());
        Ok(ServedReceipt {
            text: response.text()?,
            witnessed,
            tree_size,
        })
    }
}
