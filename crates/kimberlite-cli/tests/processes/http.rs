//! The few HTTP calls the real-process tests make, on a blocking client that follows no
//! redirect by itself (a test sees each 307 and where it points).

use std::time::Duration;

use serde_json::Value;

/// An answer: its status, `Location` when it redirects, and its body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("{error}: not JSON: {}", self.body))
    }
}

/// An HTTP client with the cluster's API key.
#[derive(Clone)]
pub struct Http {
    client: reqwest::blocking::Client,
    token: String,
}

impl Http {
    /// A client whose every request gives up after `timeout`.
    pub fn new(token: &str, timeout: Duration) -> Self {
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .expect("an HTTP client");
        Self {
            client,
            token: token.to_owned(),
        }
    }

    /// Sends one request; `Err` when no answer came (refused, reset, timed out).
    pub fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        request_id: Option<&str>,
    ) -> Result<Answer, String> {
        let mut request = self.client.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(id) = request_id {
            request = request.header("Kimberlite-Request-Id", id);
        }
        let response = request.send().map_err(|error| format!("{url}: {error}"))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.text().map_err(|error| format!("{url}: {error}"))?;
        Ok(Answer {
            status,
            location,
            body,
        })
    }

    pub fn get(&self, url: &str) -> Result<Answer, String> {
        self.send(reqwest::Method::GET, url, None, None)
    }

    pub fn post(
        &self,
        url: &str,
        body: &Value,
        request_id: Option<&str>,
    ) -> Result<Answer, String> {
        self.send(reqwest::Method::POST, url, Some(body), request_id)
    }

    /// Every event of `stream` on the node at `base`, as that node holds it
    /// (`consistency=follower`): `(offset, text)` pairs. `Err` when the node does not answer.
    pub fn events(&self, base: &str, stream: &str) -> Result<Vec<(u64, String)>, String> {
        let mut events = Vec::new();
        let mut from = 0;
        for _page in 0..100_000 {
            let url = format!(
                "{base}/v1/streams/{stream}/events?from={from}&limit=1000&consistency=follower"
            );
            let answer = self.get(&url)?;
            if answer.status != 200 {
                return Err(format!("{url}: {} {}", answer.status, answer.body));
            }
            let page = answer.json();
            for event in page["events"].as_array().expect("events") {
                let offset = event["offset"].as_u64().expect("offset");
                let text = event["payload"].as_str().expect("a text payload");
                events.push((offset, text.to_owned()));
            }
            let next = page["next_offset"].as_u64().expect("next_offset");
            let end = page["end_offset"].as_u64().expect("end_offset");
            if next >= end {
                return Ok(events);
            }
            from = next;
        }
        Err(format!("{base}: more pages than a test writes"))
    }
}
