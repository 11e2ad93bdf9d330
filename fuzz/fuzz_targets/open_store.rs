//! Recovery on arbitrary store files: the input is a set of files (manifests, segments,
//! indexes) for a store on the simulated file system; opening, reading and verifying it must
//! never panic, whatever the bytes.
#![no_main]

use kimberlite_fuzz::open_and_read;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    open_and_read(data);
});
