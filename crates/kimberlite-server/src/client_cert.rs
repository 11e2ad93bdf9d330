//! Mutual TLS: the subject common name of a client certificate the TLS layer verified
//! against `--client-ca`, which maps to the active key of the same name
//! (`docs/SERVER.md`, section "Keys and TLS").

use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Decode as _;
use x509_cert::Certificate;

/// The X.520 `commonName` attribute.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The subject common name of the verified client certificate of the connection a request
/// came on; put in every such request's extensions by the accept loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertName(pub String);

/// The subject common name of the DER certificate `der`: `None` when it does not parse or
/// has no single common name (a certificate with two would map to a key ambiguously).
#[must_use]
pub fn common_name(der: &[u8]) -> Option<String> {
    let certificate = Certificate::from_der(der).ok()?;
    let mut names = certificate
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|attribute| attribute.oid == COMMON_NAME)
        .map(|attribute| {
            let value = &attribute.value;
            value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_owned())
                .or_else(|_| {
                    value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .or_else(|_| {
                    value
                        .decode_as::<Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_owned())
                })
                .ok()
        });
    let first = names.next()??;
    if names.next().is_some() {
        return None;
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[&str]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Hospital");
        for name in names {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, *name);
        }
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn the_single_common_name_is_read() {
        assert_eq!(common_name(&certificate(&["ehr"])), Some("ehr".into()));
    }

    #[test]
    fn no_or_several_common_names_or_garbage_map_to_nothing() {
        assert_eq!(common_name(&certificate(&[])), None);
        assert_eq!(common_name(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(common_name(b""), None);
    }
}
