//! Where a command works: a store directory (`DIR`, the first positional argument) or, with
//! `--server URL`, a `kimberlite serve` server (then no `DIR` is given).
//!
//! Clap assigns positionals by position, so an optional `DIR` in front of `STREAM` cannot be
//! declared directly: the commands that take either collect their positionals and split them
//! here, once `--server` is known.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;
use kimberlite_client::Client;

use crate::error::CliError;

/// The options that point a command at a server instead of a store directory.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Work against the `kimberlite serve` server at URL (http:// or https://) instead of a
    /// store directory; DIR is then left out.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Read the API key's bearer token from FILE (as `kimberlite key add` prints it).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub token_file: Option<PathBuf>,
    /// Trust the CA certificate(s) in FILE (PEM) for the server's TLS certificate, beside
    /// the system's roots.
    #[arg(long, value_name = "FILE", requires = "server")]
    pub ca_cert: Option<PathBuf>,
}

impl ServerArgs {
    /// The client for `--server`, if given.
    fn client(&self) -> Result<Option<Client>, CliError> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        let mut builder = Client::builder(url);
        if let Some(path) = &self.token_file {
            builder = builder.token_file(path)?;
        }
        if let Some(path) = &self.ca_cert {
            builder = builder.ca_cert_file(path)?;
        }
        Ok(Some(builder.build()?))
    }
}

/// Where a command works.
#[derive(Debug)]
pub enum Place {
    /// A store directory.
    Dir(PathBuf),
    /// A server.
    Server(Client),
}

/// A command's place and the positionals after it.
#[derive(Debug)]
pub struct Located {
    /// Where the command works.
    pub place: Place,
    /// The positionals after DIR (all of them with `--server`), as text.
    pub args: Vec<String>,
}

impl Located {
    /// Splits `positionals` of `command`: DIR first unless `--server` is given, then `names`
    /// (the first `required` of them required, the rest optional).
    pub fn split(
        command: &str,
        server: &ServerArgs,
        positionals: Vec<OsString>,
        names: &[&str],
        required: usize,
    ) -> Result<Self, CliError> {
        let client = server.client()?;
        let mut positionals = positionals.into_iter();
        let place = match client {
            Some(client) => Place::Server(client),
            None => match positionals.next() {
                Some(dir) => Place::Dir(PathBuf::from(dir)),
                None => return Err(shape_error(command, names, required, "DIR is missing")),
            },
        };
        let args = positionals
            .map(|value| {
                value.into_string().map_err(|value| {
                    CliError::usage(format!("{value:?} is not UTF-8 (stream names are text)"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if args.len() < required {
            let missing = names.get(args.len()).copied().unwrap_or("an argument");
            return Err(shape_error(
                command,
                names,
                required,
                &format!("{missing} is missing"),
            ));
        }
        if args.len() > names.len() {
            let why = match place {
                Place::Server(_) => "too many arguments: with --server, leave DIR out",
                Place::Dir(_) => "too many arguments",
            };
            return Err(shape_error(command, names, required, why));
        }
        Ok(Self { place, args })
    }

    /// Positional `index` after DIR, if given.
    pub fn arg(&self, index: usize) -> Option<&str> {
        self.args.get(index).map(String::as_str)
    }

    /// Positional `index` after DIR, which [`Self::split`] made sure is there.
    pub fn required(&self, index: usize) -> Result<&str, CliError> {
        self.arg(index)
            .ok_or_else(|| CliError::usage(format!("argument {} is missing", index + 1)))
    }

    /// Positional `index` as a number named `name`.
    pub fn number(&self, index: usize, name: &str) -> Result<Option<u64>, CliError> {
        self.arg(index)
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    CliError::usage(format!("invalid value {text:?} for {name}: not a number"))
                })
            })
            .transpose()
    }
}

fn shape_error(command: &str, names: &[&str], required: usize, why: &str) -> CliError {
    let shape: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            if index < required {
                (*name).to_owned()
            } else {
                format!("[{name}]")
            }
        })
        .collect();
    let shape = shape.join(" ");
    CliError::usage_hint(
        why,
        format!(
            "Usage: kimberlite {command} DIR {shape}, or kimberlite {command} --server URL \
             --token-file FILE {shape}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> ServerArgs {
        ServerArgs {
            server: None,
            token_file: None,
            ca_cert: None,
        }
    }

    fn values(values: &[&str]) -> Vec<OsString> {
        values.iter().map(OsString::from).collect()
    }

    #[test]
    fn dir_comes_first_unless_a_server_is_given() {
        let located =
            Located::split("read", &local(), values(&["d", "s"]), &["STREAM"], 1).unwrap();
        assert!(matches!(&located.place, Place::Dir(dir) if dir == &PathBuf::from("d")));
        assert_eq!(located.args, ["s"]);
        let remote = ServerArgs {
            server: Some("http://127.0.0.1:1".into()),
            ..local()
        };
        let located = Located::split(
            "prove",
            &remote,
            values(&["s", "7"]),
            &["STREAM", "OFFSET"],
            2,
        )
        .unwrap();
        assert!(matches!(located.place, Place::Server(_)));
        assert_eq!(located.number(1, "OFFSET").unwrap(), Some(7));
        // DIR given with --server is one argument too many.
        assert!(Located::split("read", &remote, values(&["d", "s"]), &["STREAM"], 1).is_err());
    }

    #[test]
    fn missing_or_extra_positionals_are_usage_errors() {
        for given in [&[][..], &["d"], &["d", "s", "x"]] {
            let error =
                Located::split("read", &local(), values(given), &["STREAM"], 1).unwrap_err();
            assert!(matches!(error, CliError::Usage { .. }), "{given:?}");
        }
        let verify = Located::split("verify", &local(), values(&["d"]), &["STREAM"], 0).unwrap();
        assert_eq!(verify.arg(0), None);
        let bad =
            Located::split("prove", &local(), values(&["d", "s", "x"]), &["S", "O"], 2).unwrap();
        assert!(matches!(
            bad.number(1, "OFFSET"),
            Err(CliError::Usage { .. })
        ));
    }
}
