//! Building a [`Client`]: the server's URL, the bearer token, TLS trust and identity, timeouts.

use std::path::Path;
use std::time::Duration;

use reqwest::Url;

use crate::client::Client;
use crate::error::ClientError;
use crate::routing::{RetryPolicy, Routing};

/// Time a call may take before it fails, by default: enough for a synced batch of the
/// server's largest size on a slow disk.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Interval of TCP keep-alive probes on every connection: how a tail, which has no time
/// limit, notices a server that vanished without closing the connection.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Configures a [`Client`].
///
/// ```no_run
/// let client = kimberlite_client::Client::builder("https://audit.example:7070")
///     .token_file("/etc/kimberlite/ehr.token")?
///     .ca_cert_file("/etc/kimberlite/ca.pem")?
///     .build()?;
/// # Ok::<(), kimberlite_client::ClientError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    url: String,
    token: Option<String>,
    ca_certs_pem: Vec<Vec<u8>>,
    identity_pem: Option<Vec<u8>>,
    system_roots: bool,
    request_timeout: Duration,
    other_nodes: Vec<String>,
    retry: RetryPolicy,
}

impl Client {
    /// A builder for a client of the server at `url` (`http://host:port` or `https://…`,
    /// with an optional path prefix).
    pub fn builder(url: &str) -> ClientBuilder {
        ClientBuilder::new(url)
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            token: None,
            ca_certs_pem: Vec::new(),
            identity_pem: None,
            system_roots: true,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            other_nodes: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }

    /// Another node of the same cluster (base URL), tried in turn when the node a request
    /// went to cannot be reached; reads are then retried too, not only writes.
    pub fn other_node(mut self, url: &str) -> Self {
        self.other_nodes.push(url.to_owned());
        self
    }

    /// How writes (and, with other nodes, reads) are retried after a connection error or a
    /// 503 that says to retry. Default: [`RetryPolicy::default`]; `attempts: 1` never retries.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The API key's bearer token (surrounding whitespace dropped). Default: none (only
    /// `/healthz` and public routes answer).
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.trim().to_owned());
        self
    }

    /// The bearer token read from `path` (as `kimberlite key add` prints it; surrounding
    /// whitespace and the final newline dropped).
    pub fn token_file(self, path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| {
            ClientError::Config(format!(
                "cannot read the token file {}: {error}",
                path.display()
            ))
        })?;
        if text.trim().is_empty() {
            return Err(ClientError::Config(format!(
                "the token file {} is empty",
                path.display()
            )));
        }
        Ok(self.token(&text))
    }

    /// Trust the CA certificates in `pem` (one or more PEM blocks) for the server's
    /// certificate, beside the system's roots. Repeatable.
    pub fn ca_cert_pem(mut self, pem: &[u8]) -> Self {
        self.ca_certs_pem.push(pem.to_vec());
        self
    }

    /// [`Self::ca_cert_pem`] from a file.
    pub fn ca_cert_file(self, path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let pem = read_pem(path.as_ref(), "CA certificate")?;
        Ok(self.ca_cert_pem(&pem))
    }

    /// Trust only the CAs given with [`Self::ca_cert_pem`], not the system's roots
    /// (default: both).
    pub fn only_given_cas(mut self) -> Self {
        self.system_roots = false;
        self
    }

    /// Present a client certificate (mutual TLS): `pem` holds the certificate chain and its
    /// private key (PKCS#8, PKCS#1 or SEC1), both PEM.
    pub fn identity_pem(mut self, pem: &[u8]) -> Self {
        self.identity_pem = Some(pem.to_vec());
        self
    }

    /// [`Self::identity_pem`] from a certificate file and a key file.
    pub fn identity_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ClientError> {
        let mut pem = read_pem(cert.as_ref(), "client certificate")?;
        pem.push(b'\n');
        pem.extend(read_pem(key.as_ref(), "client key")?);
        Ok(self.identity_pem(&pem))
    }

    /// Time a call may wait: to connect, for its answer to start, and for each piece of
    /// the answer's body. Default [`REQUEST_TIMEOUT_DEFAULT`]; a long poll adds its wait to
    /// it; a tail has no time limit past connecting (it follows the stream for as long as
    /// the connection lives).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The client. Fails on a URL that is not `http://` or `https://`, or on certificates
    /// or keys that cannot be read.
    pub fn build(self) -> Result<Client, ClientError> {
        let base = parse_base(&self.url)?;
        let http = self.http_client(Some(self.request_timeout))?;
        // A tail's answer never ends and may be quiet for long: it gets a client of its own
        // without a timeout (a per-request timeout would bound its whole body).
        let streaming = self.http_client(None)?;
        let others = self
            .other_nodes
            .iter()
            .map(|url| parse_base(url))
            .collect::<Result<Vec<_>, _>>()?;
        let routing = Routing::new(base.clone(), others, self.retry)?;
        Ok(Client::from_parts(
            http,
            streaming,
            base,
            self.token,
            self.request_timeout,
            routing,
        ))
    }

    /// A reqwest client with this builder's TLS settings and `timeout` for whole calls.
    fn http_client(
        &self,
        timeout: Option<Duration>,
    ) -> Result<reqwest::blocking::Client, ClientError> {
        let mut http = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(self.system_roots)
            .connect_timeout(self.request_timeout)
            .timeout(timeout)
            .tcp_keepalive(TCP_KEEPALIVE)
            // Redirects are followed by hand (`routing.rs`), keeping the token, which reqwest
            // drops on a redirect to another host or port.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kimberlite-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.ca_certs_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|error| ClientError::Config(format!("a CA certificate: {error}")))?;
            if certs.is_empty() {
                return Err(ClientError::Config(
                    "a CA certificate file holds no PEM certificate".into(),
                ));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &self.identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|error| ClientError::Config(format!("the client identity: {error}")))?;
            http = http.identity(identity);
        }
        http.build()
            .map_err(|error| ClientError::Config(format!("cannot set up the HTTP client: {error}")))
    }
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|error| {
        ClientError::Config(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })
}

/// The server's base URL: `http` or `https`, no query or fragment; a path prefix (a server
/// behind a reverse proxy) is kept.
fn parse_base(url: &str) -> Result<Url, ClientError> {
    let mut base = Url::parse(url)
        .map_err(|error| ClientError::Config(format!("the server URL {url:?}: {error}")))?;
    if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
        return Err(ClientError::Config(format!(
            "the server URL {url:?} is not http:// or https://"
        )));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ClientError::Config(format!(
            "the server URL {url:?} has a query or fragment; give only scheme, host, port \
             and an optional path prefix"
        )));
    }
    if base.path().ends_with('/') {
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_http_or_https_without_query() {
        assert_eq!(
            parse_base("http://127.0.0.1:7070/").unwrap().as_str(),
            "http://127.0.0.1:7070/"
        );
        assert_eq!(
            parse_base("https://proxy.example/audit/").unwrap().path(),
            "/audit"
        );
        for bad in [
            "ftp://x",
            "127.0.0.1:7070",
            "http://x/?a=1",
            "http://x/#f",
            "mailto:a@b",
        ] {
            assert!(
                matches!(parse_base(bad), Err(ClientError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn unreadable_or_empty_token_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        for path in [empty, dir.path().join("missing")] {
            assert!(matches!(
                ClientBuilder::new("http://x").token_file(&path),
                Err(ClientError::Config(_))
            ));
        }
        let good = dir.path().join("token");
        std::fs::write(&good, "  secret \n").unwrap();
        let builder = ClientBuilder::new("http://x").token_file(&good).unwrap();
        assert_eq!(builder.token.as_deref(), Some("secret"));
    }

    #[test]
    fn certificates_that_are_not_pem_are_refused() {
        let built = ClientBuilder::new("https://x")
            .ca_cert_pem(b"not a certificate")
            .build();
        assert!(matches!(built, Err(ClientError::Config(_))));
        let built = ClientBuilder::new("https://x")
            .identity_pem(b"not a key")
            .build();
        assert!(matches!(built, Err(ClientError::Config(_))));
    }
}
