//! The log of `kimberlite serve`: `tracing` events to standard error, filtered by `RUST_LOG`
//! (docs/SERVER.md, section "Logs").

use tracing_subscriber::filter::{EnvFilter, FromEnvError};

/// What is logged without `RUST_LOG`: this project's crates at `info`, every other crate
/// (openraft, hyper, reqwest) at `warn`, so a healthy node stays quiet; not openraft's
/// replication and its progress handler, which log five lines per failed try to a node that
/// is down (a storage error there is logged by openraft's core): `kimberlite_raft` says
/// instead when a node stops answering and when it answers again.
pub const DEFAULT_FILTER: &str = "warn,openraft::replication=off,\
openraft::engine::handler::replication_handler=error,kimberlite=info,kimberlite_server=info,\
kimberlite_raft=info,kimberlite_storage=info,kimberlite_cli=info";

/// The filter `RUST_LOG` names, else [`DEFAULT_FILTER`]; a `RUST_LOG` that does not parse
/// is said on standard error and the default used (a typo must not silence the log).
fn filter(from_env: Result<EnvFilter, FromEnvError>) -> EnvFilter {
    match from_env {
        Ok(filter) => filter,
        Err(error) => {
            if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() {
                eprintln!("kimberlite: RUST_LOG ignored ({error}); logging {DEFAULT_FILTER}");
            }
            EnvFilter::new(DEFAULT_FILTER)
        }
    }
}

/// Sends this process's `tracing` events to standard error. Once per process; a second call
/// (a subscriber already set) changes nothing.
pub fn install() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(EnvFilter::try_from_default_env()))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_parses_and_keeps_other_crates_at_warn() {
        let filter = EnvFilter::try_new(DEFAULT_FILTER).expect("the default filter parses");
        let text = filter.to_string();
        assert!(text.contains("kimberlite_raft=info"), "{text}");
        assert!(text.contains("openraft::replication=off"), "{text}");
        assert!(text.contains("warn"), "{text}");
    }

    #[test]
    fn a_missing_or_bad_filter_falls_back_to_the_default() {
        let default = EnvFilter::new(DEFAULT_FILTER).to_string();
        let missing = EnvFilter::try_from_env("KIMBERLITE_TEST_NO_SUCH_FILTER");
        assert_eq!(filter(missing).to_string(), default);
        // A variable only this test reads.
        std::env::set_var("KIMBERLITE_TEST_BAD_FILTER", "openraft=loud");
        let bad = EnvFilter::try_from_env("KIMBERLITE_TEST_BAD_FILTER");
        assert!(bad.is_err(), "the level `loud` is refused");
        assert_eq!(filter(bad).to_string(), default);
        let good = filter(Ok(EnvFilter::new("openraft=debug")));
        assert_eq!(good.to_string(), "openraft=debug");
    }
}
