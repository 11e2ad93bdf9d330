//! Who is asking and what they may do: principals, permissions and their stream patterns.
//!
//! Checks run before any lookup of the stream, so a refusal says nothing about whether the
//! stream exists.

use crate::error::ApiError;

/// What a key may do on the streams its pattern matches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Append events.
    Append,
    /// Read events, verify, fetch proofs and checkpoints.
    Read,
    /// Create streams, manage keys; implies read.
    Admin,
}

impl Permission {
    /// The word used in errors and key files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }

    /// The permission named `word` (`append`, `read`, `admin`).
    #[must_use]
    pub fn parse(word: &str) -> Option<Self> {
        [Self::Append, Self::Read, Self::Admin]
            .into_iter()
            .find(|permission| permission.as_str() == word)
    }
}

/// One grant: a permission on the streams whose names match `pattern` (`*` matches any run
/// of characters; `*` alone matches every stream).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The permission granted.
    pub permission: Permission,
    /// The stream name pattern.
    pub pattern: String,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (never its token): what the access log records.
    pub key_id: String,
    /// What it may do.
    pub grants: Vec<Grant>,
}

impl Principal {
    /// The principal of key `key_id` holding `grants`, each a permission on a stream name
    /// pattern: `Principal::new("auditor", &[(Permission::Read, "*")])`.
    #[must_use]
    pub fn new(key_id: impl Into<String>, grants: &[(Permission, &str)]) -> Self {
        Self {
            key_id: key_id.into(),
            grants: grants
                .iter()
                .map(|&(permission, pattern)| Grant {
                    permission,
                    pattern: pattern.into(),
                })
                .collect(),
        }
    }

    /// Whether this principal may do `permission` on `stream`. `Admin` implies `Read`.
    #[must_use]
    pub fn may(&self, permission: Permission, stream: &str) -> bool {
        self.grants.iter().any(|grant| {
            let covers = grant.permission == permission
                || (grant.permission == Permission::Admin && permission == Permission::Read);
            covers && pattern_matches(&grant.pattern, stream)
        })
    }

    /// `Ok` when this principal may do `permission` on `stream`, else 403.
    pub fn require(&self, permission: Permission, stream: &str) -> Result<(), ApiError> {
        if self.may(permission, stream) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                operation: permission.as_str(),
                stream: stream.to_owned(),
            })
        }
    }
}

impl Principal {
    /// `Ok` when this principal has `admin` on every stream (a pattern of `*` alone): what
    /// managing keys takes, since a key manager can give any key any right.
    pub fn require_admin_everywhere(&self) -> Result<(), ApiError> {
        let everywhere = self.grants.iter().any(|grant| {
            grant.permission == Permission::Admin && grant.pattern.chars().all(|c| c == '*')
        });
        if everywhere {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                operation: Permission::Admin.as_str(),
                stream: "*".into(),
            })
        }
    }
}

/// Glob match where `*` stands for any run of characters (none included).
pub(crate) fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_globs() {
        for (pattern, name, expected) in [
            ("*", "anything", true),
            ("*", "", true),
            ("billing", "billing", true),
            ("billing", "billing-2", false),
            ("billing-*", "billing-2", true),
            ("billing-*", "billing", false),
            ("*-audit", "ehr-audit", true),
            ("*-audit", "ehr-audit-x", false),
            ("a*b*c", "a-b-c", true),
            ("a*b*c", "a-c", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(
                pattern_matches(pattern, name),
                expected,
                "{pattern} vs {name}"
            );
        }
    }

    #[test]
    fn admin_implies_read_but_not_append() {
        let principal = Principal::new("k", &[(Permission::Admin, "*")]);
        assert!(principal.may(Permission::Read, "x"));
        assert!(principal.may(Permission::Admin, "x"));
        assert!(!principal.may(Permission::Append, "x"));
        assert!(principal.require_admin_everywhere().is_ok());
    }

    #[test]
    fn admin_on_some_streams_may_not_manage_keys() {
        for pattern in ["billing-*", "x", "*-audit"] {
            let principal = Principal::new("k", &[(Permission::Admin, pattern)]);
            assert!(principal.require_admin_everywhere().is_err(), "{pattern}");
        }
    }

    #[test]
    fn permissions_parse_from_their_words() {
        for permission in [Permission::Append, Permission::Read, Permission::Admin] {
            assert_eq!(Permission::parse(permission.as_str()), Some(permission));
        }
        assert_eq!(Permission::parse("write"), None);
    }
}
