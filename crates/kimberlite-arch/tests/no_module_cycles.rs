//! Every workspace crate's modules are free of import cycles (`kimberlite_arch` docs say what a
//! dependency is), and the checker finds a cycle planted in a fixture.

use std::path::{Path, PathBuf};

use kimberlite_arch::{check_crate, module_name};

fn workspace_crates() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&crates)
        .expect("crates/ is readable")
        .map(|e| e.expect("crates/ entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn report(crate_dir: &Path) -> String {
    check_crate(crate_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", crate_dir.display()))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn workspace_crates_have_no_module_cycles() {
    let mut failures = String::new();
    for dir in workspace_crates() {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let cycles = report(&dir);
        if !cycles.is_empty() {
            failures.push_str(&format!(
                "{name} has import cycles between modules:\n{cycles}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn a_planted_cycle_is_reported_as_a_path_of_modules() {
    let cycles = check_crate(&fixture("planted_cycle")).expect("fixture parses");
    let paths: Vec<Vec<String>> = cycles
        .iter()
        .map(|c| c.modules.iter().map(|m| module_name(m)).collect())
        .collect();
    assert_eq!(
        paths,
        [
            vec!["a", "b", "c", "a"],
            vec!["a", "c", "a"],
            vec!["store::disk", "store::walk", "store::disk"],
        ]
    );
    let text = cycles.first().map(ToString::to_string).unwrap_or_default();
    assert!(text.starts_with("a -> b -> c -> a\n"), "{text}");
    assert!(text.contains("src/a.rs:3 names crate::b::B"), "{text}");
}

#[test]
fn tests_nesting_reexports_and_comments_are_not_dependencies() {
    let cycles = check_crate(&fixture("no_cycle")).expect("fixture parses");
    let text: String = cycles.iter().map(ToString::to_string).collect();
    assert!(cycles.is_empty(), "{text}");
}
