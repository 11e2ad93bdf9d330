//! [`RequestTable`]: the answers to recent requests, part of the replicated state, so a retry
//! after a leader change gets the first answer instead of a second append
//! (docs/REPLICATION.md, section "Requests answered once").

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::command::{RequestId, Response};

/// How many answers the table keeps; the oldest (by log index) go first. A client retries
/// within this many requests of the cluster, or its retry may be applied again.
pub const REQUEST_ANSWERS_MAX: usize = 65_536;

/// One kept answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The request.
    pub request: RequestId,
    /// The log index of the entry that answered it.
    pub index: u64,
    /// The answer.
    pub response: Response,
}

/// Recent requests and their answers. Every replica inserts the same answers in the same
/// order, so every replica keeps the same table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Answer>", into = "Vec<Answer>")]
pub struct RequestTable {
    /// By log index, then request: the entry of a batch answers several requests.
    by_index: BTreeMap<(u64, RequestId), Answer>,
    by_request: HashMap<RequestId, u64>,
}

impl RequestTable {
    /// The answer kept for `request`, if any.
    #[must_use]
    pub fn get(&self, request: RequestId) -> Option<&Response> {
        let index = *self.by_request.get(&request)?;
        self.by_index
            .get(&(index, request))
            .map(|answer| &answer.response)
    }

    /// Keeps `response` as the answer to `request`, applied at log `index`; drops the oldest
    /// answer past [`REQUEST_ANSWERS_MAX`].
    pub fn insert(&mut self, request: RequestId, index: u64, response: Response) {
        if let Some(old) = self.by_request.insert(request, index) {
            self.by_index.remove(&(old, request));
        }
        self.by_index.insert(
            (index, request),
            Answer {
                request,
                index,
                response,
            },
        );
        while self.by_index.len() > REQUEST_ANSWERS_MAX {
            if let Some((_, oldest)) = self.by_index.pop_first() {
                self.by_request.remove(&oldest.request);
            }
        }
    }

    /// How many answers are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_index.len()
    }

    /// Whether no answer is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }
}

impl From<Vec<Answer>> for RequestTable {
    fn from(answers: Vec<Answer>) -> Self {
        let mut table = Self::default();
        for answer in answers {
            table.insert(answer.request, answer.index, answer.response);
        }
        table
    }
}

impl From<RequestTable> for Vec<Answer> {
    fn from(table: RequestTable) -> Self {
        table.by_index.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seq: u64) -> RequestId {
        RequestId { client: 1, seq }
    }

    #[test]
    fn keeps_the_newest_answers_and_survives_json() {
        let mut table = RequestTable::default();
        for seq in 0..(REQUEST_ANSWERS_MAX as u64 + 2) {
            table.insert(request(seq), seq + 10, Response::Stream { stream: seq });
        }
        assert_eq!(table.len(), REQUEST_ANSWERS_MAX);
        assert_eq!(table.get(request(0)), None);
        assert_eq!(table.get(request(1)), None);
        assert_eq!(table.get(request(2)), Some(&Response::Stream { stream: 2 }));
        let text = serde_json::to_string(&table).unwrap();
        let back: RequestTable = serde_json::from_str(&text).unwrap();
        assert_eq!(back, table);
    }

    #[test]
    fn keeps_every_answer_of_one_entry() {
        let mut table = RequestTable::default();
        for seq in 0..3 {
            table.insert(request(seq), 7, Response::Stream { stream: seq });
        }
        assert_eq!(table.len(), 3);
        for seq in 0..3 {
            assert_eq!(
                table.get(request(seq)),
                Some(&Response::Stream { stream: seq })
            );
        }
        let text = serde_json::to_string(&table).unwrap();
        assert_eq!(serde_json::from_str::<RequestTable>(&text).unwrap(), table);
    }
}
