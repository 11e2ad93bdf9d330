//! A crate's source files to its module tree: for each module, its child modules, what its
//! `use` declarations bind, the items it defines, and every path it names that starts at
//! `crate`, `self`, `super`, a child module or a name it imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::lexer::{tokenize, Tok, Token};

/// A module's path from the crate root (`[]` is the root).
pub type ModPath = Vec<String>;

/// A path as written, with `crate`, `self` and `super` already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    /// `true`: `segments` start at the crate root. `false`: the first segment is a name to
    /// look up in the module the path appears in (a child module or an import; anything
    /// else, such as `std`, is another crate and ignored).
    pub anchored: bool,
    /// The path's segments.
    pub segments: Vec<String>,
}

/// What one module (file or inline `mod x { .. }`) declares and names.
#[derive(Debug, Default)]
pub struct Module {
    /// The file module this module's text is in (itself, for a file module).
    pub file_module: ModPath,
    /// The file, relative to the crate's `src/` parent, for reports.
    pub file: PathBuf,
    /// Child modules that are compiled outside tests.
    pub children: BTreeSet<String>,
    /// `use` bindings: the name in scope and the path it stands for (`pub use` included).
    pub uses: BTreeMap<String, PathRef>,
    /// `use path::*` imports.
    pub globs: Vec<PathRef>,
    /// Names of items defined here (functions, types, constants, macros).
    pub items: BTreeSet<String>,
    /// Every candidate path named here, with its line.
    pub refs: Vec<(PathRef, usize)>,
}

/// Errors reading a crate's sources.
#[derive(Debug)]
pub enum ParseError {
    /// A file could not be read.
    Read(PathBuf, std::io::Error),
    /// `mod name;` whose file is neither `name.rs` nor `name/mod.rs` (e.g. a `#[path]`
    /// attribute, which this checker does not follow outside test modules).
    MissingModuleFile(PathBuf, String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            Self::MissingModuleFile(path, name) => {
                write!(f, "{}: no file for `mod {name};`", path.display())
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Reads the crate whose root file is `root` (`src/lib.rs` or `src/main.rs`) and every module
/// file it declares, skipping modules declared `#[cfg(test)]` and files named `*_tests.rs`.
pub fn parse_crate(root: &Path) -> Result<BTreeMap<ModPath, Module>, ParseError> {
    let base = root
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""));
    let mut modules = BTreeMap::new();
    let mut pending = vec![(Vec::new(), root.to_path_buf())];
    while let Some((path, file)) = pending.pop() {
        let source = fs::read_to_string(&file).map_err(|e| ParseError::Read(file.clone(), e))?;
        let tokens = tokenize(&source);
        let display = file.strip_prefix(base).unwrap_or(&file).to_path_buf();
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
            modules: &mut modules,
            file: display,
        };
        parser.block(&path, &path);
        let dir = children_dir(&file);
        let declared: Vec<String> = modules.get(&path).map_or_else(Vec::new, |m| {
            m.children
                .iter()
                .filter(|c| !m.inline_child(c))
                .cloned()
                .collect()
        });
        for name in declared {
            let child = find_module_file(&dir, &name)
                .ok_or_else(|| ParseError::MissingModuleFile(file.clone(), name.clone()))?;
            let mut child_path = path.clone();
            child_path.push(name);
            if child.to_string_lossy().ends_with("_tests.rs") {
                if let Some(m) = modules.get_mut(&path) {
                    m.children
                        .remove(child_path.last().map_or("", String::as_str));
                }
                continue;
            }
            pending.push((child_path, child));
        }
    }
    Ok(modules)
}

impl Module {
    /// Whether child `name` was declared inline (`mod name { .. }`), not as a file.
    fn inline_child(&self, name: &str) -> bool {
        self.items.contains(&format!("mod {name}"))
    }
}

/// The directory holding a file module's children: its own directory for `lib.rs`, `main.rs`
/// and `mod.rs`, else a directory named after the file.
fn children_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_path_buf();
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("lib" | "main" | "mod") | None => parent,
        Some(stem) => parent.join(stem),
    }
}

/// `name.rs` or `name/mod.rs` under `dir`. (A `mod name;` inside an inline module is not
/// followed; none exists outside tests.)
fn find_module_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [
        dir.join(format!("{name}.rs")),
        dir.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Keywords that open an item ending at its brace block (or at `;` when it has none).
const BLOCK_ITEMS: &[&str] = &["fn", "impl", "trait", "struct", "enum", "union", "mod"];
/// Keywords whose following identifier names an item.
const NAMING_ITEMS: &[&str] = &[
    "fn", "struct", "enum", "trait", "type", "const", "static", "union",
];

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    modules: &'a mut BTreeMap<ModPath, Module>,
    file: PathBuf,
}

impl<'a> Parser<'a> {
    fn tok(&self, at: usize) -> Option<&'a Tok> {
        self.tokens.get(at).map(|t| &t.tok)
    }

    fn ident(&self, at: usize) -> Option<&'a str> {
        match self.tok(at) {
            Some(Tok::Ident(s)) => Some(s),
            _ => None,
        }
    }

    fn line(&self, at: usize) -> usize {
        self.tokens.get(at).map_or(0, |t| t.line)
    }

    fn module(&mut self, path: &ModPath) -> &mut Module {
        let file = self.file.clone();
        self.modules.entry(path.clone()).or_insert_with(|| Module {
            file,
            ..Module::default()
        })
    }

    /// Reads a module's tokens up to the `}` closing it (or the end of the file).
    fn block(&mut self, path: &ModPath, file_module: &ModPath) {
        self.module(path).file_module = file_module.clone();
        let mut depth = 0usize;
        while let Some(tok) = self.tok(self.pos).cloned() {
            match tok {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') if depth == 0 => {
                    self.pos += 1;
                    return;
                }
                Tok::Punct('}') => depth -= 1,
                Tok::Punct('#') => {
                    if self.attribute_is_cfg_test() {
                        self.skip_attributes_and_visibility();
                        self.skip_item();
                    }
                    continue;
                }
                Tok::Ident(word) => {
                    self.word(&word, path, file_module);
                    continue;
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// At an identifier: a module declaration, a `use`, an item name or the start of a path.
    fn word(&mut self, word: &str, path: &ModPath, file_module: &ModPath) {
        let after_sep = self.pos > 0 && self.tok(self.pos - 1) == Some(&Tok::PathSep);
        let after_dollar = self.pos > 0 && self.tok(self.pos - 1) == Some(&Tok::Punct('$'));
        if word == "mod" {
            if let Some(name) = self.ident(self.pos + 1).map(str::to_owned) {
                self.module(path).children.insert(name.clone());
                if self.tok(self.pos + 2) == Some(&Tok::Punct('{')) {
                    self.module(path).items.insert(format!("mod {name}"));
                    self.pos += 3;
                    let mut child = path.clone();
                    child.push(name);
                    self.block(&child, file_module);
                    return;
                }
            }
        } else if word == "use" && !after_sep {
            self.pos += 1;
            self.use_tree(path, None);
            return;
        } else if word == "macro_rules" && self.tok(self.pos + 1) == Some(&Tok::Punct('!')) {
            if let Some(name) = self.ident(self.pos + 2).map(str::to_owned) {
                self.module(path).items.insert(name);
            }
        } else if NAMING_ITEMS.contains(&word) && !after_sep {
            if let Some(name) = self.ident(self.pos + 1).map(str::to_owned) {
                self.module(path).items.insert(name);
            }
        } else if !after_sep && !after_dollar && self.tok(self.pos + 1) == Some(&Tok::PathSep) {
            let line = self.line(self.pos);
            let (segments, end) = self.path_segments(self.pos);
            if let Some(r) = anchor(path, &segments) {
                self.module(path).refs.push((r, line));
            }
            self.pos = end;
            return;
        }
        self.pos += 1;
    }

    /// `ident (:: ident)*` from `at`; stops before `::<`, `::{` or `::*`.
    fn path_segments(&self, mut at: usize) -> (Vec<String>, usize) {
        let mut segments = Vec::new();
        while let Some(name) = self.ident(at) {
            segments.push(name.to_owned());
            at += 1;
            if self.tok(at) == Some(&Tok::PathSep) && self.ident(at + 1).is_some() {
                at += 1;
            } else {
                break;
            }
        }
        (segments, at)
    }

    /// Reads a use tree after `use` (or after `prefix::{`), up to `;` or the closing `}`.
    /// Each leaf binds a name (or a glob) and is a reference.
    fn use_tree(&mut self, path: &ModPath, prefix: Option<&[String]>) {
        let mut segments: Vec<String> = prefix.map(<[String]>::to_vec).unwrap_or_default();
        let line = self.line(self.pos);
        if prefix.is_none() && self.tok(self.pos) == Some(&Tok::PathSep) {
            // `use ::name` is always another crate.
            self.skip_to_semicolon();
            return;
        }
        loop {
            match self.tok(self.pos).cloned() {
                Some(Tok::Ident(name)) if name == "as" => {
                    let alias = self.ident(self.pos + 1).map(str::to_owned);
                    self.pos += 2;
                    if let (Some(alias), Some(r)) = (alias, anchor(path, &segments)) {
                        self.bind(path, alias, r, line);
                    }
                    segments.clear();
                }
                Some(Tok::Ident(name)) => {
                    segments.push(name);
                    self.pos += 1;
                }
                Some(Tok::PathSep) => self.pos += 1,
                Some(Tok::Punct('*')) => {
                    self.pos += 1;
                    if let Some(r) = anchor(path, &segments) {
                        self.module(path).globs.push(r.clone());
                        self.module(path).refs.push((r, line));
                    }
                    segments.clear();
                }
                Some(Tok::Punct('{')) => {
                    self.pos += 1;
                    self.use_tree(path, Some(&segments));
                    segments.clear();
                }
                Some(Tok::Punct(',')) => {
                    self.pos += 1;
                    self.bind_leaf(path, &mut segments, line);
                    let prefix = prefix.map(<[String]>::to_vec).unwrap_or_default();
                    segments = prefix;
                }
                Some(Tok::Punct(';' | '}')) | None => {
                    self.pos += 1;
                    self.bind_leaf(path, &mut segments, line);
                    return;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A leaf `a::b` binds `b`; `a::{self}` binds `a`.
    fn bind_leaf(&mut self, path: &ModPath, segments: &mut Vec<String>, line: usize) {
        if segments.last().is_some_and(|s| s == "self") && segments.len() > 1 {
            segments.pop();
        }
        let prefix_len = segments.len();
        if let (Some(name), Some(r)) = (segments.last().cloned(), anchor(path, segments)) {
            if prefix_len > 0 && name != "self" {
                self.bind(path, name, r, line);
            }
        }
        segments.clear();
    }

    fn bind(&mut self, path: &ModPath, name: String, r: PathRef, line: usize) {
        if !r.anchored && r.segments.len() == 1 {
            return; // `use other_crate;`
        }
        let module = self.module(path);
        module.uses.insert(name, r.clone());
        module.refs.push((r, line));
    }

    /// At `#`: reads `#[..]` or `#![..]` and says whether it is exactly `#[cfg(test)]`.
    /// Leaves `pos` at the attribute (if it is `cfg(test)`) or past it.
    fn attribute_is_cfg_test(&mut self) -> bool {
        let start = self.pos;
        let is_test = self.tok(start + 1) == Some(&Tok::Punct('['))
            && self.ident(start + 2) == Some("cfg")
            && self.tok(start + 3) == Some(&Tok::Punct('('))
            && self.ident(start + 4) == Some("test")
            && self.tok(start + 5) == Some(&Tok::Punct(')'))
            && self.tok(start + 6) == Some(&Tok::Punct(']'));
        if !is_test {
            self.skip_attribute();
        }
        is_test
    }

    /// At `#`: moves past `#[..]` or `#![..]`.
    fn skip_attribute(&mut self) {
        self.pos += 1;
        if self.tok(self.pos) == Some(&Tok::Punct('!')) {
            self.pos += 1;
        }
        if self.tok(self.pos) == Some(&Tok::Punct('[')) {
            self.skip_group();
        }
    }

    /// At an opening bracket: moves past its matching close.
    fn skip_group(&mut self) {
        let mut depth = 0usize;
        while let Some(tok) = self.tok(self.pos) {
            self.pos += 1;
            match tok {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn skip_attributes_and_visibility(&mut self) {
        loop {
            match self.tok(self.pos) {
                Some(Tok::Punct('#')) => self.skip_attribute(),
                Some(Tok::Ident(w)) if w == "pub" => {
                    self.pos += 1;
                    if self.tok(self.pos) == Some(&Tok::Punct('(')) {
                        self.skip_group();
                    }
                }
                _ => return,
            }
        }
    }

    /// Moves past one item: to its `;`, or past its brace block when it is a block item
    /// (its leading words, such as `const fn` or `unsafe impl`, hold a block keyword).
    fn skip_item(&mut self) {
        let block_item = (self.pos..)
            .map_while(|at| match self.tok(at) {
                Some(Tok::Ident(w)) => Some(Some(w.as_str())),
                Some(Tok::Literal) => Some(None),
                _ => None,
            })
            .flatten()
            .any(|w| BLOCK_ITEMS.contains(&w));
        while let Some(tok) = self.tok(self.pos) {
            match tok {
                Tok::Punct(';') => {
                    self.pos += 1;
                    return;
                }
                Tok::Punct('{') if block_item => {
                    self.skip_group();
                    return;
                }
                Tok::Punct('(' | '[' | '{') => self.skip_group(),
                _ => self.pos += 1,
            }
        }
    }

    fn skip_to_semicolon(&mut self) {
        while let Some(tok) = self.tok(self.pos) {
            self.pos += 1;
            if tok == &Tok::Punct(';') {
                return;
            }
        }
    }
}

/// Applies `crate`, `self` and `super` to a path written in module `path`. `None` for a
/// path that cannot name this crate's modules (`super` above the root, `Self::..`).
fn anchor(path: &ModPath, segments: &[String]) -> Option<PathRef> {
    let (first, rest) = segments.split_first()?;
    match first.as_str() {
        "crate" => Some(PathRef {
            anchored: true,
            segments: rest.to_vec(),
        }),
        "self" => Some(PathRef {
            anchored: true,
            segments: [path.as_slice(), rest].concat(),
        }),
        "super" => {
            let mut base = path.clone();
            let mut rest = rest;
            base.pop()?;
            while let Some(("super", tail)) = rest.split_first().map(|(s, t)| (s.as_str(), t)) {
                base.pop()?;
                rest = tail;
            }
            Some(PathRef {
                anchored: true,
                segments: [base.as_slice(), rest].concat(),
            })
        }
        "Self" => None,
        _ => Some(PathRef {
            anchored: false,
            segments: segments.to_vec(),
        }),
    }
}
