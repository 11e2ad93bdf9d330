//! Architecture checks that `cargo test --workspace` enforces: no import cycles between the
//! modules of one crate.
//!
//! # What counts as a dependency
//!
//! The nodes are a crate's module *files* (`lib.rs`/`main.rs` is the root `crate`; an inline
//! `mod x { .. }` belongs to the file it is written in). Module file `A` depends on module
//! file `B` when `A`'s text names a path that resolves into `B`:
//!
//! - paths starting with `crate::`, `self::` or `super::` (any number of `super`), and bare
//!   paths whose first segment is a child module or a name the module imports (`use`), in
//!   `use` declarations (every leaf of a `use a::{b, c::*}` tree), types, expressions and
//!   macro arguments;
//! - a path resolves segment by segment: into a child module, through a `use` binding or a
//!   glob import of the module reached (so `crate::Error`, re-exported by `lib.rs` from
//!   `error.rs`, is a dependency on `error`, not on the root), and stops at the first item;
//! - not dependencies: declaring a child (`mod x;`: nesting alone), comments and doc links,
//!   string literals, `$crate::` in macros, paths to other crates, and everything inside an
//!   item marked exactly `#[cfg(test)]` (test modules, test-only `use`s) or in a file named
//!   `*_tests.rs`.
//!
//! A cycle is a path `A -> B -> .. -> A` of such dependencies. [`check_crate`] returns, for
//! every dependency that lies on a cycle, the shortest cycle through it, each step with the
//! file and line that makes it.
//!
//! The reading is lexical (no macro expansion, no type inference): a path produced by a
//! macro is not seen, and a `#[path]` attribute outside test code is an error rather than
//! silently skipped.

mod graph;
mod lexer;
mod parse;

use std::fmt;
use std::path::Path;

pub use graph::{Cycle, Evidence};
pub use parse::ParseError;

/// The import cycles of the crate in `crate_dir`: those of its library (`src/lib.rs`) and
/// of its binary (`src/main.rs`), whichever exist.
pub fn check_crate(crate_dir: &Path) -> Result<Vec<Cycle>, ParseError> {
    let mut found = Vec::new();
    for root in ["src/lib.rs", "src/main.rs"] {
        let root = crate_dir.join(root);
        if root.is_file() {
            let modules = parse::parse_crate(&root)?;
            found.extend(graph::cycles(&graph::dependency_graph(&modules)));
        }
    }
    Ok(found)
}

/// A module path as a reader writes it: `crate` for the root, else `a::b`.
pub fn module_name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_owned()
    } else {
        path.join("::")
    }
}

impl fmt::Display for Cycle {
    /// `a -> b -> a`, then one line per step: `file:line names path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.modules.iter().map(|m| module_name(m)).collect();
        writeln!(f, "{}", names.join(" -> "))?;
        for e in &self.evidence {
            writeln!(f, "    {}:{} names {}", e.file.display(), e.line, e.path)?;
        }
        Ok(())
    }
}
