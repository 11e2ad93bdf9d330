//! C2SP signed notes (`c2sp.org/signed-note`) with Ed25519 keys.
//!
//! A signed note is a UTF-8 text ending in a newline, a blank line, then one line per
//! signature: `— <key name> <base64(key id || signature)>` (an em dash, U+2014). The key id is
//! the first four bytes of `SHA-256(key name || "\n" || 0x01 || public key)`, big-endian; the
//! `0x01` names the Ed25519 algorithm. Keys are written in the usual text forms:
//!
//! - verifier key: `<name>+<key id as 8 hex digits>+<base64(0x01 || public key)>`;
//! - signer key: `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte seed)>`.
//!
//! Kept from the spec: the text rules (no control characters but newline, a final newline),
//! key names without whitespace or `+`, the key id, unknown signatures ignored. Dropped:
//! algorithms other than Ed25519 (their signatures are ignored as unknown), and notes above
//! [`MAX_NOTE_BYTES`] or with more than [`MAX_SIGNATURES`] signatures (refused: no honest
//! checkpoint comes near).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// Algorithm byte of Ed25519 in key ids and key encodings.
const ALG_ED25519: u8 = 0x01;
/// Largest note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// Most signature lines accepted on one note.
pub const MAX_SIGNATURES: usize = 100;
/// The prefix of a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key or a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key's text form is malformed.
    #[error("malformed {what} key: {reason}")]
    MalformedKey {
        /// `signer` or `verifier`.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key name is empty or holds whitespace or `+`.
    #[error("invalid key name {name:?}: it must be non-empty, without whitespace or '+'")]
    InvalidKeyName {
        /// The name.
        name: String,
    },
    /// The note is malformed.
    #[error("malformed signed note: {reason}")]
    MalformedNote {
        /// What is wrong.
        reason: &'static str,
    },
    /// No signature by the verifier's key (name and key id) is on the note.
    #[error("the note has no signature by key {name} ({key_id:08x})")]
    NoSignature {
        /// The verifier key's name.
        name: String,
        /// The verifier key's id.
        key_id: u32,
    },
    /// A signature by the verifier's key is on the note but does not verify.
    #[error("the signature by key {name} ({key_id:08x}) does not verify: the note was changed or forged")]
    BadSignature {
        /// The verifier key's name.
        name: String,
        /// The verifier key's id.
        key_id: u32,
    },
}

pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::InvalidKeyName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    key_id_for(name, ALG_ED25519, public)
}

/// `SHA-256(name || "\n" || algorithm || public key)[:4]`, big-endian: the key id of every
/// signature type (signed-note section "Signatures", tlog-cosignature section "Format").
pub(crate) fn key_id_for(name: &str, algorithm: u8, public: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([algorithm]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(id)
}

/// Splits `<name>+<key id>+<key>` of a key's text form. The key is base64, which may itself
/// hold '+': only name and id are split off.
pub(crate) fn split_key_text(text: &str) -> Option<(&str, &str, &str)> {
    let mut parts = text.splitn(3, '+');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// Name, key id and key of a `what` private key's text form,
/// `PRIVATE+KEY+<name>+<key id>+<key>` (whitespace around it ignored).
pub(crate) fn split_private_key_text<'a>(
    text: &'a str,
    what: &'static str,
) -> Result<(&'a str, &'a str, &'a str), NoteError> {
    let malformed = |reason| NoteError::MalformedKey { what, reason };
    let rest = text
        .trim()
        .strip_prefix("PRIVATE+KEY+")
        .ok_or(malformed("it must start with PRIVATE+KEY+"))?;
    split_key_text(rest).ok_or(malformed("expected PRIVATE+KEY+<name>+<key id>+<key>"))
}

/// `Ok` when `id`, a key text's key id (8 hex digits), is `key_id`, the id of the `what` key
/// the text's name and key make.
pub(crate) fn check_key_id(id: &str, key_id: u32, what: &'static str) -> Result<(), NoteError> {
    if id.len() == 8 && u32::from_str_radix(id, 16).ok() == Some(key_id) {
        Ok(())
    } else {
        Err(NoteError::MalformedKey {
            what,
            reason: "the key id does not match the name and key",
        })
    }
}

/// A 32-byte seed from the operating system's random source, for a new `what` key.
pub(crate) fn random_seed(what: &'static str) -> Result<[u8; 32], NoteError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|_| NoteError::MalformedKey {
        what,
        reason: "the system random source failed",
    })?;
    Ok(seed)
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn decode_key_bytes(text: &str, what: &'static str) -> Result<[u8; 32], NoteError> {
    decode_key_bytes_of(text, what, ALG_ED25519)
}

/// Decodes `base64(algorithm || 32 bytes)`: an Ed25519 key of the given signature type.
pub(crate) fn decode_key_bytes_of(
    text: &str,
    what: &'static str,
    algorithm: u8,
) -> Result<[u8; 32], NoteError> {
    let malformed = |reason| NoteError::MalformedKey { what, reason };
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|_| malformed("the key is not base64"))?;
    match bytes.split_first() {
        Some((&alg, key)) if alg == algorithm => {
            <[u8; 32]>::try_from(key).map_err(|_| malformed("an Ed25519 key has 32 bytes"))
        }
        Some(_) => Err(malformed(if algorithm == ALG_ED25519 {
            "not an Ed25519 key (algorithm byte is not 0x01)"
        } else {
            "not an Ed25519 cosignature key (algorithm byte is not 0x04)"
        })),
        None => Err(malformed("the key is empty")),
    }
}

fn encode_key_bytes(key: &[u8; 32]) -> String {
    encode_key_bytes_of(key, ALG_ED25519)
}

/// `base64(algorithm || key)`.
pub(crate) fn encode_key_bytes_of(key: &[u8; 32], algorithm: u8) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(algorithm);
    bytes.extend_from_slice(key);
    BASE64.encode(bytes)
}

/// An Ed25519 signing key with its name.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({}, {:08x})", self.name, self.key_id())
    }
}

impl SignerKey {
    /// A new random key named `name`, from the operating system's random source.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        Self::from_seed(name, random_seed("signer")?)
    }

    /// The key named `name` from a 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<key id>+<base64>`; checks the key id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, id, key) = split_private_key_text(text, "signer")?;
        let signer = Self::from_seed(name, decode_key_bytes(key, "signer")?)?;
        check_key_id(id, signer.key_id(), "signer")?;
        Ok(signer)
    }

    /// The text form (`PRIVATE+KEY+...`). Keep it secret.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id(),
            encode_key_bytes(&self.key.to_bytes())
        )
    }

    /// The same key under another name (and so another key id): a log that names each
    /// checkpoint's key after its origin, as C2SP tlog-tiles logs do, signs every stream's
    /// checkpoints with one key.
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: self.key.clone(),
        })
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, &self.key.verifying_key())
    }

    /// The matching verifier key.
    #[must_use]
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must be a valid note text): returns the signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let line = signature_line(&self.name, self.key_id(), &signature.to_bytes());
        Ok(format!("{text}\n{line}"))
    }
}

/// An Ed25519 verifier (public) key with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<key id>+<base64(0x01 || public key)>`; checks the key id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let malformed = |reason| NoteError::MalformedKey {
            what: "verifier",
            reason,
        };
        let (name, id, key) =
            split_key_text(text.trim()).ok_or(malformed("expected <name>+<key id>+<key>"))?;
        check_name(name)?;
        let key = VerifyingKey::from_bytes(&decode_key_bytes(key, "verifier")?)
            .map_err(|_| malformed("not a valid Ed25519 public key"))?;
        let verifier = Self {
            name: name.to_owned(),
            key,
        };
        check_key_id(id, verifier.key_id(), "verifier")?;
        Ok(verifier)
    }

    /// The text form.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id(),
            encode_key_bytes(self.key.as_bytes())
        )
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, &self.key)
    }

    /// The same key under another name (`name` must be a valid key name), with the key id
    /// that name gives it.
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: self.key,
        })
    }

    /// Checks that `note` carries a valid signature by this key; returns the note's text
    /// (everything before the blank line, final newline included).
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, lines) = split_note(note)?;
        let mut found = false;
        for line in lines {
            if line.name != self.name || line.key_id != self.key_id() {
                continue; // another key's signature: ignored, as the spec says
            }
            found = true;
            let verified = Signature::from_slice(&line.signature)
                .ok()
                .is_some_and(|signature| self.key.verify(text.as_bytes(), &signature).is_ok());
            if verified {
                return Ok(text);
            }
        }
        let (name, key_id) = (self.name.clone(), self.key_id());
        Err(if found {
            NoteError::BadSignature { name, key_id }
        } else {
            NoteError::NoSignature { name, key_id }
        })
    }
}

/// One signature line of a note, decoded: `— <name> base64(key id || signature)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine<'a> {
    /// The key name.
    pub name: &'a str,
    /// The key id (first four bytes of the blob, big-endian).
    pub key_id: u32,
    /// The rest of the blob: the signature (for a cosignature, timestamp then signature).
    pub signature: Vec<u8>,
}

/// Splits a signed note into its text (final newline included) and its signature lines,
/// checking the syntax only: no signature is verified. A line of any key is returned, known
/// or not; callers pick theirs by name and key id.
pub fn split_note(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), NoteError> {
    let malformed = |reason| NoteError::MalformedNote { reason };
    if note.len() > MAX_NOTE_BYTES {
        return Err(malformed("the note is larger than 1 MiB"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(malformed("no blank line before the signatures"))?;
    let (text, signatures) = note.split_at(split + 1);
    check_text(text)?;
    let signatures = signatures
        .strip_prefix('\n')
        .ok_or(malformed("no blank line before the signatures"))?;
    if !signatures.ends_with('\n') {
        return Err(malformed(
            "the last signature line does not end in a newline",
        ));
    }
    let lines: Vec<&str> = signatures.lines().collect();
    if lines.is_empty() || lines.len() > MAX_SIGNATURES {
        return Err(malformed("a note has between 1 and 100 signatures"));
    }
    let parsed = lines
        .into_iter()
        .map(parse_signature_line)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((text, parsed))
}

/// Parses one signature line, without its newline.
pub fn parse_signature_line(line: &str) -> Result<SignatureLine<'_>, NoteError> {
    let malformed = |reason| NoteError::MalformedNote { reason };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(malformed("a signature line must start with '\u{2014} '"))?;
    let (name, blob) = rest.split_once(' ').ok_or(malformed(
        "a signature line is '\u{2014} <name> <signature>'",
    ))?;
    let blob = BASE64
        .decode(blob)
        .map_err(|_| malformed("a signature is not base64"))?;
    match blob.split_first_chunk::<4>() {
        Some((id, signature)) => Ok(SignatureLine {
            name,
            key_id: u32::from_be_bytes(*id),
            signature: signature.to_vec(),
        }),
        None => Err(malformed("a signature is shorter than its key id")),
    }
}

/// A signature line's text: `— <name> base64(key id || signature)\n`.
pub(crate) fn signature_line(name: &str, key_id: u32, signature: &[u8]) -> String {
    let mut blob = Vec::with_capacity(4 + signature.len());
    blob.extend_from_slice(&key_id.to_be_bytes());
    blob.extend_from_slice(signature);
    format!("{SIG_PREFIX}{name} {}\n", BASE64.encode(blob))
}

/// A note text: non-empty, ends in a newline, no control characters but newlines.
pub(crate) fn check_text(text: &str) -> Result<(), NoteError> {
    let malformed = |reason| NoteError::MalformedNote { reason };
    if !text.ends_with('\n') {
        return Err(malformed("the text must end with a newline"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(malformed("the text holds a control character"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(malformed("the text holds a blank line"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_key_signs_under_its_new_name_only() {
        let key = SignerKey::from_seed("log", [3; 32]).unwrap();
        let origin = key.renamed("example.org/store/audit").unwrap();
        assert_eq!(origin.name(), "example.org/store/audit");
        assert_ne!(origin.key_id(), key.key_id());
        let note = origin.sign("example.org/store/audit\n1\nAAAA\n").unwrap();
        assert!(origin.verifier().open(&note).is_ok());
        assert!(key.verifier().open(&note).is_err());
        assert!(key.renamed("a name").is_err());
        assert!(key.renamed("").is_err());
    }

    fn signer() -> SignerKey {
        SignerKey::from_seed("example.com/log", [7u8; 32]).unwrap()
    }

    #[test]
    fn keys_roundtrip_through_text() {
        // Seeds whose base64 holds '+' (the separator of the text form) roundtrip too.
        for seed in 0..64u8 {
            let signer = SignerKey::from_seed("k", [seed; 32]).unwrap();
            assert_eq!(
                SignerKey::parse(&signer.to_text()).unwrap().to_text(),
                signer.to_text()
            );
            let verifier = signer.verifier();
            assert_eq!(VerifierKey::parse(&verifier.to_text()).unwrap(), verifier);
        }
        let signer = signer();
        let parsed = SignerKey::parse(&signer.to_text()).unwrap();
        assert_eq!(parsed.to_text(), signer.to_text());
        let verifier = VerifierKey::parse(&signer.verifier().to_text()).unwrap();
        assert_eq!(verifier, signer.verifier());
    }

    #[test]
    fn sign_then_open() {
        let signer = signer();
        let note = signer.sign("hello\nworld\n").unwrap();
        assert_eq!(signer.verifier().open(&note).unwrap(), "hello\nworld\n");
        let forged = note.replace("world", "w0rld");
        assert!(matches!(
            signer.verifier().open(&forged),
            Err(NoteError::BadSignature { .. })
        ));
        let other = SignerKey::from_seed("example.com/log", [8u8; 32]).unwrap();
        assert!(matches!(
            other.verifier().open(&note),
            Err(NoteError::NoSignature { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let verifier = signer().verifier();
        for note in [
            "",
            "\n\n",
            "text\n\n",
            "text\n\nnot a signature\n",
            "text\n\n\u{2014} example.com/log !!!\n",
            "text\n\n\u{2014} example.com/log AAAA\n",
            "text\n\n\u{2014} example.com/log AAAAAAAA\n",
        ] {
            assert!(verifier.open(note).is_err(), "{note:?}");
        }
        for key in ["", "a+b", "a+00000000+AAAA", "a b+00000000+AQ==", "+++"] {
            assert!(VerifierKey::parse(key).is_err(), "{key:?}");
            assert!(SignerKey::parse(key).is_err(), "{key:?}");
        }
        assert!(SignerKey::from_seed("has space", [0; 32]).is_err());
    }

    #[test]
    fn a_key_text_with_another_key_id_is_refused_as_such() {
        let signer = signer();
        let (id, other) = (signer.key_id(), signer.key_id() ^ 1);
        let forged = |text: String| text.replacen(&format!("{id:08x}"), &format!("{other:08x}"), 1);
        let mismatch = "the key id does not match the name and key";
        assert!(matches!(
            SignerKey::parse(&forged(signer.to_text())),
            Err(NoteError::MalformedKey { what: "signer", reason }) if reason == mismatch
        ));
        assert!(matches!(
            VerifierKey::parse(&forged(signer.verifier().to_text())),
            Err(NoteError::MalformedKey { what: "verifier", reason }) if reason == mismatch
        ));
    }
}
