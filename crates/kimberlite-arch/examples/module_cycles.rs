//! Prints the import cycles of the crates given as directories (default: every crate under
//! `crates/`), e.g. `cargo run -p kimberlite-arch --example module_cycles -- crates/kimberlite`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        let crates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        dirs = std::fs::read_dir(crates)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        dirs.retain(|d| d.join("Cargo.toml").is_file());
        dirs.sort();
    }
    let mut clean = true;
    for dir in dirs {
        match kimberlite_arch::check_crate(&dir) {
            Ok(cycles) if cycles.is_empty() => println!("{}: no cycles", dir.display()),
            Ok(cycles) => {
                clean = false;
                println!("{}: {} cycles", dir.display(), cycles.len());
                cycles.iter().for_each(|c| print!("  {c}"));
            }
            Err(e) => {
                clean = false;
                println!("{}: {e}", dir.display());
            }
        }
    }
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
