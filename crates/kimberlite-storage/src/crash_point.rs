//! Test-only crash points: where the real-process crash tests (`docs/TESTING.md`, the fault
//! table) kill `kimberlite erase`, `retain` and `append --subject` between two of their steps.
//!
//! When the environment variable [`CRASH_POINT_ENV`] names a point, the process prints
//! `kimberlite crash point: <name>` on stderr when it gets there and waits to be killed. Unset
//! (always, outside those tests) a point costs one environment lookup, at steps that each
//! write and sync a file.

use std::time::Duration;

/// The environment variable naming the crash point to stop at. Test-only.
pub const CRASH_POINT_ENV: &str = "KIMBERLITE_TEST_CRASH_POINT";

/// Stops here for good when [`CRASH_POINT_ENV`] is `name`; returns at once otherwise.
pub fn crash_point(name: &str) {
    if std::env::var_os(CRASH_POINT_ENV).is_some_and(|point| point == name) {
        eprintln!("kimberlite crash point: {name}");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}
