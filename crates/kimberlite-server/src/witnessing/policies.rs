//! Which witness policy applies to which stream: `kimberlite serve --witness-policy
//! [PATTERN=]FILE`, repeated; the first rule whose pattern matches the stream's name wins, and
//! a rule without a pattern matches every stream (`*` stands for any run of characters, as in
//! key grants). A stream no rule matches is not witnessed.

use std::sync::Arc;

use kimberlite::proof::WitnessPolicy;

use crate::principal::pattern_matches;

/// Why a witness policy was refused for the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A witness of the policy has no URL: the server could not ask it.
    #[error(
        "witness {witness} has no URL: the server sends add-checkpoint requests, so every \
         `witness` line of a server's policy needs one (`witness <key> <url>`)"
    )]
    NoUrl {
        /// The witness's name.
        witness: String,
    },
}

/// The rules: stream name pattern and the policy of the streams it matches, in order.
#[derive(Debug, Clone, Default)]
pub struct WitnessPolicies {
    rules: Vec<(String, Arc<WitnessPolicy>)>,
}

impl WitnessPolicies {
    /// No rules: no stream is witnessed.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule after the others: `policy` for the streams `pattern` matches. Refused
    /// when a witness of `policy` has no URL.
    pub fn add(&mut self, pattern: &str, policy: WitnessPolicy) -> Result<(), PolicyError> {
        if let Some(key) = policy
            .witnesses()
            .iter()
            .find(|key| policy.url(key).is_none())
        {
            return Err(PolicyError::NoUrl {
                witness: key.name().to_owned(),
            });
        }
        self.rules.push((pattern.to_owned(), Arc::new(policy)));
        Ok(())
    }

    /// The policy of stream `name`: the first rule whose pattern matches it.
    #[must_use]
    pub fn for_stream(&self, name: &str) -> Option<&Arc<WitnessPolicy>> {
        self.rules
            .iter()
            .find(|(pattern, _)| pattern_matches(pattern, name))
            .map(|(_, policy)| policy)
    }

    /// Whether there is no rule.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use kimberlite::proof::WitnessSigner;

    use super::*;

    fn policy(urls: bool) -> WitnessPolicy {
        let key = WitnessSigner::from_seed("w1", [1; 32]).unwrap().verifier();
        let url = if urls { " http://127.0.0.1:1" } else { "" };
        WitnessPolicy::parse(&format!("witness {}{url}\nquorum 1\n", key.to_text())).unwrap()
    }

    #[test]
    fn the_first_matching_rule_wins_and_witnesses_need_urls() {
        let mut policies = WitnessPolicies::new();
        assert!(policies.is_empty());
        policies.add("ehr-*", policy(true)).unwrap();
        policies.add("*", policy(true)).unwrap();
        assert!(Arc::ptr_eq(
            policies.for_stream("ehr-access").unwrap(),
            &policies.rules[0].1
        ));
        assert!(Arc::ptr_eq(
            policies.for_stream("billing").unwrap(),
            &policies.rules[1].1
        ));
        let mut only = WitnessPolicies::new();
        only.add("ehr-*", policy(true)).unwrap();
        assert!(only.for_stream("billing").is_none());
        assert!(matches!(
            only.add("*", policy(false)),
            Err(PolicyError::NoUrl { witness }) if witness == "w1"
        ));
    }
}
