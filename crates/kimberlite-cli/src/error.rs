//! `CliError`: why a command failed, what the person running it can do, and its exit code.

use std::process::ExitCode;

use kimberlite::Error;

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
    /// A call to a server (`--server`) failed.
    Remote {
        /// The client's error: the server's answer, or why there was none.
        error: kimberlite_client::ClientError,
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
            CliError::Remote { error, .. }
                if error.kind() == Some(&kimberlite_client::ErrorKind::Corrupt) =>
            {
                ExitCode::from(1)
            }
            _ => ExitCode::from(2),
        }
    }

    /// Prints the error (and hint) on standard error.
    pub fn print(&self) {
        let (message, hint) = match self {
            CliError::Store { error, hint } => (error.to_string(), hint.clone()),
            CliError::Usage { message, hint } => (message.clone(), hint.clone()),
            CliError::Remote { error, hint } => (error.to_string(), hint.clone()),
            CliError::Tampered => return,
        };
        eprintln!("kimberlite: error: {message}");
        if let Some(hint) = hint {
            eprintln!("  hint: {hint}");
        }
    }
}

impl From<kimberlite_client::ClientError> for CliError {
    fn from(error: kimberlite_client::ClientError) -> Self {
        use kimberlite_client::ErrorKind;
        let hint = match error.kind() {
            Some(ErrorKind::Unauthorized) => Some(
                "pass --token-file FILE holding a key's token (`kimberlite key add` prints one)"
                    .to_owned(),
            ),
            Some(ErrorKind::Forbidden) => {
                Some("this key lacks the permission; ask an admin for a key that has it".to_owned())
            }
            Some(ErrorKind::Conflict) => error.conflict_next_offset().map(|next| {
                format!("the stream's next offset is {next}: read it again and retry from there")
            }),
            _ => None,
        };
        CliError::Remote { error, hint }
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
                 next open rebuild it (not for a stream `retain` pruned: its tree cannot be \
                 rebuilt below the cut)",
                stream.as_u64()
            )),
            Error::RetainRefused { .. } => Some(
                "`kimberlite checkpoint DIR STREAM --key FILE` signs and keeps a checkpoint of \
                 the stream's head; retain up to its size"
                    .to_owned(),
            ),
            Error::Pruned { first_offset, .. } => Some(format!(
                "retention dropped the events below offset {first_offset}; read from there"
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
