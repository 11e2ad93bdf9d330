//! The `kimberlite` command (work in progress).

fn main() {}
