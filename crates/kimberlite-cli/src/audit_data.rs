//! Realistic, deterministic audit events for the demo: a hospital's record accesses,
//! prescriptions, billing exports and staff logins, as JSON.

/// The demo's busiest stream.
pub const ACCESS_STREAM: &str = "patient-record-access";

/// The stream whose end the demo cuts off in a copy.
pub const LOGINS_STREAM: &str = "staff-logins";

/// The demo's streams and their share of the events (in percent).
pub const STREAMS: [(&str, u64); 4] = [
    (ACCESS_STREAM, 55),
    ("prescriptions", 20),
    ("billing-exports", 15),
    (LOGINS_STREAM, 10),
];

/// Deterministic generator of realistic audit events (SplitMix64; no dependency needed).
pub struct AuditGenerator {
    state: u64,
}

const CLINICIANS: [&str; 8] = [
    "dr.okafor",
    "dr.chen",
    "dr.haddad",
    "nurse.silva",
    "nurse.kowalski",
    "dr.nguyen",
    "pharm.ito",
    "dr.moreau",
];
const RESOURCES: [&str; 6] = [
    "lab-results",
    "imaging",
    "medications",
    "discharge-summary",
    "allergies",
    "vitals",
];
const REASONS: [&str; 4] = [
    "treatment",
    "consult",
    "emergency-access",
    "care-coordination",
];

impl AuditGenerator {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let index = (self.next() % from.len() as u64) as usize;
        from.get(index).copied().unwrap_or_default()
    }

    pub fn pick_stream(&mut self) -> usize {
        let mut roll = self.next() % 100;
        for (index, (_, share)) in STREAMS.iter().enumerate() {
            if roll < *share {
                return index;
            }
            roll -= share;
        }
        0
    }

    pub fn event(&mut self, stream: usize, n: u64) -> String {
        let seconds = 8 * 3600 + n * 7 + self.next() % 7;
        let ts = format!(
            "2026-03-14T{:02}:{:02}:{:02}.{:03}Z",
            (seconds / 3600) % 24,
            (seconds / 60) % 60,
            seconds % 60,
            self.next() % 1000
        );
        let actor = self.pick(&CLINICIANS);
        let patient = format!("P-{:06}", self.next() % 40_000);
        let session = format!("{:016x}", self.next());
        let ip = format!(
            "10.{}.{}.{}",
            self.next() % 8,
            self.next() % 256,
            self.next() % 256
        );
        match stream {
            0 => format!(
                r#"{{"ts":"{ts}","event":"record.viewed","actor":"{actor}","patient":"{patient}","resource":"{}","reason":"{}","ip":"{ip}","session":"{session}"}}"#,
                self.pick(&RESOURCES),
                self.pick(&REASONS)
            ),
            1 => format!(
                r#"{{"ts":"{ts}","event":"prescription.signed","actor":"{actor}","patient":"{patient}","drug":"rx-{:05}","dose_mg":{},"refills":{},"session":"{session}"}}"#,
                self.next() % 20_000,
                5 * (1 + self.next() % 100),
                self.next() % 4
            ),
            2 => format!(
                r#"{{"ts":"{ts}","event":"claims.exported","actor":"billing.batch","patients":{},"payer":"payer-{:03}","amount_cents":{},"file":"claims-{n:06}.x12"}}"#,
                1 + self.next() % 200,
                self.next() % 40,
                self.next() % 10_000_000
            ),
            _ => format!(
                r#"{{"ts":"{ts}","event":"staff.login","actor":"{actor}","method":"{}","ip":"{ip}","ok":{}}}"#,
                if self.next().is_multiple_of(3) {
                    "badge+pin"
                } else {
                    "sso"
                },
                !self.next().is_multiple_of(20)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_are_json() {
        let mut generator = AuditGenerator::new(1);
        for stream in 0..STREAMS.len() {
            let event = generator.event(stream, 42);
            let value: serde_json::Value = serde_json::from_str(&event).unwrap();
            assert!(value.get("event").is_some(), "{event}");
        }
        let shares: u64 = STREAMS.iter().map(|(_, share)| share).sum();
        assert_eq!(shares, 100);
    }
}
