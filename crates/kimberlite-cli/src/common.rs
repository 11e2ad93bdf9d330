//! What the subcommands share: errors a person can act on, opening stores, progress bars and
//! number formatting.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kimberlite::{Config, Error, Kimberlite, Problem, StreamId};

/// Why a subcommand failed, and what the person running it can do about it.
#[derive(Debug)]
pub enum CliError {
    /// A store operation failed.
    Store {
        /// The store's error.
        error: Error,
        /// What to try next, if anything useful can be said.
        hint: Option<String>,
    },
    /// The arguments or the input cannot be used.
    Usage {
        /// What is wrong.
        message: String,
        /// What to try next.
        hint: Option<String>,
    },
    /// Verification found a problem; it was already printed.
    Tampered,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// 1 for damaged data, 2 for everything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Tampered => ExitCode::from(1),
            CliError::Store { error, .. } if error.is_corruption() => ExitCode::from(1),
            _ => ExitCode::from(2),
        }
    }

    /// Prints the error (and hint) on standard error.
    pub fn print(&self) {
        let (message, hint) = match self {
            CliError::Store { error, hint } => (error.to_string(), hint.clone()),
            CliError::Usage { message, hint } => (message.clone(), hint.clone()),
            CliError::Tampered => return,
        };
        eprintln!("kimberlite: error: {message}");
        if let Some(hint) = hint {
            eprintln!("  hint: {hint}");
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        let hint = match &error {
            Error::Locked { .. } => Some(
                "another kimberlite process (or application) has this store open; \
                 wait for it to finish"
                    .to_owned(),
            ),
            Error::Poisoned => Some("run the command again: reopening recovers".to_owned()),
            Error::NotAStore { .. } => Some(
                "give a new or empty directory, or one that holds a store (kimberlite.json)"
                    .to_owned(),
            ),
            Error::TreeDamaged { stream, .. } => Some(format!(
                "`kimberlite verify DIR` names the damaged node; the tree is derived from the \
                 log, so once the damage is understood, removing DIR/merkle/{:020}/ makes the \
                 next open rebuild it",
                stream.as_u64()
            )),
            error if error.is_other_format() => Some(
                "open the store with the version of kimberlite that wrote it; this build \
                     reads only its own format"
                    .to_owned(),
            ),
            error if error.is_corruption() => {
                Some("run `kimberlite verify DIR` for a full report".to_owned())
            }
            _ => None,
        };
        CliError::Store { error, hint }
    }
}

/// How long a command waits for a store another process holds (for example a `tail` that is
/// reading it for a moment) before reporting it in use.
pub const LOCK_WAIT: Duration = Duration::from_millis(1500);

/// Opens the store in `dir`, waiting up to `wait` while another process holds it.
pub fn open_waiting(dir: &Path, config: Config, wait: Duration) -> Result<Kimberlite, Error> {
    let deadline = Instant::now() + wait;
    loop {
        match Kimberlite::open_with(dir, config.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            outcome => return outcome,
        }
    }
}

/// Opens an existing store; never creates one. Missing directories and directories that are
/// not stores get a hint. Waits up to [`LOCK_WAIT`] for a store in use. What recovery did on
/// opening it is told on standard error ([`announce_recovery`]).
pub fn open_existing(dir: &Path, config: Config) -> Result<Kimberlite, CliError> {
    let store = open_existing_waiting(dir, config, LOCK_WAIT)?;
    announce_recovery(&store);
    Ok(store)
}

/// Tells on standard error what recovery repaired or found when `store` was opened, if
/// anything. Every command that opens a store does (those that print a report, `verify` and
/// `inspect`, put it in the report instead): a torn tail recovery cuts off is cut by the
/// first command to open the store, and was told only by `verify` and `inspect`, so after
/// any other command nobody ever learnt of it.
pub fn announce_recovery(store: &Kimberlite) {
    for action in store.recovery_report().actions {
        eprintln!("kimberlite: note: on open, recovery {action}");
    }
}

/// [`open_existing`] with a chosen wait for a store in use, telling nothing of recovery.
pub fn open_existing_waiting(
    dir: &Path,
    config: Config,
    wait: Duration,
) -> Result<Kimberlite, CliError> {
    open_waiting(dir, config.create_if_missing(false), wait).map_err(|error| {
        let hint = match &error {
            Error::StoreNotFound { .. } => Some(
                "check the path; `kimberlite append DIR STREAM --create` creates a store, \
                 `kimberlite demo` builds an example one",
            ),
            Error::NotAStore { .. } => {
                Some("point at the directory that holds kimberlite.json, or at a new directory")
            }
            _ => None,
        };
        match hint {
            Some(hint) => CliError::Store {
                error,
                hint: Some(hint.to_owned()),
            },
            None => CliError::from(error),
        }
    })
}

/// The id of the stream named `name`, or an error listing the streams there are.
pub fn find_stream(store: &Kimberlite, dir: &Path, name: &str) -> Result<StreamId, CliError> {
    if let Some(id) = store.stream(name) {
        return Ok(id);
    }
    let names: Vec<String> = store.list_streams().into_iter().map(|s| s.name).collect();
    let hint = if names.is_empty() {
        "the store has no streams yet".to_owned()
    } else {
        format!("streams in this store: {}", names.join(", "))
    };
    Err(CliError::usage_hint(
        format!("no stream named {name:?} in {}", dir.display()),
        hint,
    ))
}

/// A progress bar on standard error, hidden when standard error is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template =
        format!("{{spinner}} {what:<10} [{{bar:32}}] {{pos}}/{{len}} {{per_sec}} {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A byte count in the largest binary unit that keeps it at least 1.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        unit = next;
        if value < 1024.0 || next == "TiB" {
            break;
        }
        value /= 1024.0;
    }
    if unit == "B" {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// The first 16 hex digits of a hash, or `-` for none.
pub fn short_hash(hash: Option<kimberlite::ChainHash>) -> String {
    hash.map_or_else(
        || "-".to_owned(),
        |h| h.to_string().chars().take(16).collect(),
    )
}

/// Prints what the storage layer repaired or found when `store` was opened, if anything.
pub fn print_recovery(store: &Kimberlite) {
    for action in store.recovery_report().actions {
        outln!("  note: on open, recovery {action}");
    }
}

/// The id shown for a problem about a stream the store does not have at all.
pub const MISSING_STREAM: StreamId = StreamId::new(u64::MAX);

/// A verification problem on one line: stream, offset, file, byte, reason.
pub fn describe_problem(problem: &Problem) -> String {
    let name = crate::check::label(problem.name.as_deref(), problem.stream);
    let mut text = if problem.stream == MISSING_STREAM {
        format!("{name}: missing")
    } else {
        format!("{name} (id {}): offset {}", problem.stream, problem.offset)
    };
    if let Some(file) = &problem.file {
        let _ = write!(text, ", file {}", file.display());
    } else if let Some(segment) = problem.segment {
        let _ = write!(text, ", segment {segment}");
    }
    if let Some(position) = problem.position {
        let _ = write!(text, ", byte {position}");
    }
    let _ = write!(text, ": {}", problem.reason);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_readable() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(short_hash(None), "-");
    }
}
