//! The tiles view: a stream's C2SP tlog-tiles, read from a client built on its prefix
//! (`…/v1/streams/<stream>/tlog/`), as `kimberlite monitor` follows it.

use kimberlite_proof::TileId;
use reqwest::Method;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// `GET <base>/checkpoint` on a client built on a stream's tiles prefix: the signed
    /// checkpoint note the tiles view serves.
    pub fn tlog_checkpoint(&self) -> Result<String, ClientError> {
        let response = self.send(self.request(Method::GET, &["checkpoint"])?)?;
        Ok(response.text()?)
    }

    /// `GET <base>/tile/<L>/<N>[.p/<W>]` on a client built on a stream's tiles prefix: the
    /// tile's bytes, checked only for their length (`width * 32`); whether they belong to a
    /// tree is for the caller to prove.
    pub fn tlog_tile(&self, tile: TileId) -> Result<Vec<u8>, ClientError> {
        let path = tile.path();
        let segments: Vec<&str> = path.split('/').collect();
        let response = self.send(self.request(Method::GET, &segments)?)?;
        let bytes = response.bytes()?;
        if bytes.len() != usize::from(tile.width()) * 32 {
            return Err(ClientError::Protocol(format!(
                "{path}: {} bytes, not {} hashes of 32",
                bytes.len(),
                tile.width()
            )));
        }
        Ok(bytes.to_vec())
    }
}
