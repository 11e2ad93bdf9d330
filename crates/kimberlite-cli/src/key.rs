//! `kimberlite key add|list|revoke`: the server's API keys, kept in the key file
//! (`DIR/server-keys.json` unless `--keys` names another). A running `kimberlite serve`
//! notices each change from its next request on. `docs/SERVER.md`, section "Keys and TLS".

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kimberlite::{Kimberlite, MARKER_FILE};
use kimberlite_server::{rfc3339, Grant, KeyRing, Permission};

use crate::error::CliError;

/// Arguments of `kimberlite key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Add a key and print its token (shown this once; only its SHA-256 is kept).
    Add(AddArgs),
    /// List keys: id, name, grants, creation time, revoked or not (never tokens).
    List(ListArgs),
    /// Revoke a key: a running server refuses it from its next request on.
    Revoke(RevokeArgs),
}

/// Where the keys are.
#[derive(Debug, Args)]
struct KeyFileArgs {
    /// The store directory the server serves.
    dir: PathBuf,
    /// The key file, when not DIR/server-keys.json (as given to `kimberlite serve --keys`).
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct AddArgs {
    #[command(flatten)]
    file: KeyFileArgs,
    /// The key's name: unique among active keys; a client certificate whose subject common
    /// name equals it authenticates as this key (`serve --client-ca`).
    #[arg(long)]
    name: String,
    /// A permission on the streams a pattern matches: `append:PATTERN`, `read:PATTERN` or
    /// `admin:PATTERN` (`*` matches any run of characters). Repeat for several.
    #[arg(long = "allow", value_name = "PERMISSION:PATTERN", required = true)]
    allow: Vec<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    file: KeyFileArgs,
    /// One JSON object per key instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    #[command(flatten)]
    file: KeyFileArgs,
    /// The key's id (`kid_...`, as `key list` shows).
    id: String,
}

/// Runs `kimberlite key ...`.
pub fn key(args: &KeyArgs) -> Result<ExitCode, CliError> {
    match &args.command {
        KeyCommand::Add(args) => add(args),
        KeyCommand::List(args) => list(args),
        KeyCommand::Revoke(args) => revoke(args),
    }
}

/// `permission:pattern` as a grant.
fn parse_grant(text: &str) -> Result<Grant, CliError> {
    let (word, pattern) = text.split_once(':').unwrap_or((text, ""));
    let permission = Permission::parse(word).ok_or_else(|| {
        CliError::usage_hint(
            format!("--allow {text:?}: unknown permission {word:?}"),
            "write --allow append:PATTERN, --allow read:PATTERN or --allow admin:PATTERN",
        )
    })?;
    if pattern.is_empty() {
        return Err(CliError::usage_hint(
            format!("--allow {text:?}: no stream pattern"),
            format!("write --allow {word}:PATTERN, e.g. {word}:'*' for every stream"),
        ));
    }
    Ok(Grant {
        permission,
        pattern: pattern.to_owned(),
    })
}

/// The key file of `args`. With the default path and `create`, a missing or empty store
/// directory becomes a store first: a new store refuses a directory already holding files
/// it does not know, so the key file must not be the first thing in it.
fn key_file(args: &KeyFileArgs, create: bool) -> Result<PathBuf, CliError> {
    if let Some(path) = &args.keys {
        return Ok(path.clone());
    }
    if create && !args.dir.join(MARKER_FILE).is_file() {
        let empty =
            std::fs::read_dir(&args.dir).map_or(true, |mut entries| entries.next().is_none());
        if empty {
            drop(Kimberlite::open(&args.dir)?);
        }
    }
    Ok(KeyRing::default_path(&args.dir))
}

fn open(path: &Path) -> Result<KeyRing, CliError> {
    KeyRing::open(path).map_err(|error| CliError::usage(error.to_string()))
}

fn add(args: &AddArgs) -> Result<ExitCode, CliError> {
    let grants = args
        .allow
        .iter()
        .map(|text| parse_grant(text))
        .collect::<Result<Vec<_>, _>>()?;
    let path = key_file(&args.file, true)?;
    let added = open(&path)?
        .add(&args.name, grants)
        .map_err(|error| CliError::usage(error.to_string()))?;
    eprintln!(
        "kimberlite: added key {} ({:?}) to {}; its token, shown this once:",
        added.entry.id,
        added.entry.name,
        path.display()
    );
    outln!("{}", added.token);
    Ok(ExitCode::SUCCESS)
}

fn grants_text(grants: &[Grant]) -> String {
    grants
        .iter()
        .map(|grant| format!("{}:{}", grant.permission.as_str(), grant.pattern))
        .collect::<Vec<_>>()
        .join(" ")
}

fn list(args: &ListArgs) -> Result<ExitCode, CliError> {
    let path = key_file(&args.file, false)?;
    let keys = open(&path)?
        .list()
        .map_err(|error| CliError::usage(error.to_string()))?;
    if keys.is_empty() && !args.json {
        eprintln!(
            "kimberlite: no keys in {}; add one with `kimberlite key add {} --name NAME --allow admin:'*'`",
            path.display(),
            args.file.dir.display()
        );
    }
    for key in keys {
        if args.json {
            let value = serde_json::json!({
                "id": key.id,
                "name": key.name,
                "grants": key.grants,
                "created": rfc3339(key.created_unix_s),
                "revoked": key.revoked,
            });
            outln!("{value}");
        } else {
            let state = if key.revoked { "revoked" } else { "active" };
            outln!(
                "{}  {state:<7}  {}  {:?}  {}",
                key.id,
                rfc3339(key.created_unix_s),
                key.name,
                grants_text(&key.grants)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(args: &RevokeArgs) -> Result<ExitCode, CliError> {
    let path = key_file(&args.file, false)?;
    let key = open(&path)?
        .revoke(&args.id)
        .map_err(|error| CliError::usage(error.to_string()))?;
    outln!("revoked {} ({:?})", key.id, key.name);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_bad_ones_say_how_to_write_them() {
        let grant = parse_grant("append:billing-*").expect("grant");
        assert_eq!(grant.permission, Permission::Append);
        assert_eq!(grant.pattern, "billing-*");
        assert_eq!(parse_grant("admin:*").expect("grant").pattern, "*");
        for bad in ["write:x", "append", "append:", ""] {
            assert!(parse_grant(bad).is_err(), "{bad}");
        }
    }
}
