//! `kimberlite cluster status|add-learner|promote|remove --server URL`: a cluster's
//! membership through the server's admin API (docs/SERVER.md, section "Cluster mode").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kimberlite_client::{Client, ClusterStatus};

use crate::error::CliError;

/// Arguments of `kimberlite cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    /// A node of the cluster (http:// or https://); changes are redirected to the leader.
    #[arg(long, value_name = "URL", global = true)]
    server: Option<String>,
    /// The bearer token of a key with admin on `*`.
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Trust the CA certificate(s) in FILE (PEM) for the servers' TLS certificates.
    #[arg(long, value_name = "FILE", global = true)]
    ca_cert: Option<PathBuf>,
    /// Print the cluster's status as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// The node's view: its role, the leader, voters and learners, log positions.
    Status,
    /// Add node ID (started with `serve --node-id ID`) at URL as a learner; returns once it
    /// has caught up, or says it is still catching up.
    AddLearner {
        /// The new node's id.
        id: u64,
        /// Its base URL, as the other nodes reach it.
        url: String,
    },
    /// Promote learner ID to voter.
    Promote {
        /// The learner's id.
        id: u64,
    },
    /// Remove node ID (a voter or a learner) from the cluster.
    Remove {
        /// The node's id.
        id: u64,
    },
}

fn client(args: &ClusterArgs) -> Result<Client, CliError> {
    let Some(url) = &args.server else {
        return Err(CliError::usage(
            "kimberlite cluster needs --server URL (any node of the cluster)",
        ));
    };
    let mut builder = Client::builder(url);
    if let Some(path) = &args.token_file {
        builder = builder.token_file(path)?;
    }
    if let Some(path) = &args.ca_cert {
        builder = builder.ca_cert_file(path)?;
    }
    Ok(builder.build()?)
}

fn print(status: &ClusterStatus, json: bool) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string_pretty(status)
            .map_err(|error| CliError::usage(error.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "node {}: {} (term {}), applied {}",
        status.node_id, status.state, status.term, status.last_applied
    );
    match (&status.leader_id, &status.leader_url) {
        (Some(id), Some(url)) => println!("leader: {id} at {url}"),
        (Some(id), None) => println!("leader: {id}"),
        _ => println!("leader: none known"),
    }
    for (role, members) in [("voter", &status.voters), ("learner", &status.learners)] {
        for member in members {
            let progress = status
                .replication
                .as_ref()
                .and_then(|progress| progress.get(&member.id))
                .map(|at| format!(", replicated to {at}"))
                .unwrap_or_default();
            println!("{role} {} at {}{progress}", member.id, member.url);
        }
    }
    if let Some(halted) = &status.halted {
        println!("HALTED: {halted}");
    }
    Ok(())
}

/// Runs `kimberlite cluster`.
pub fn run(args: &ClusterArgs) -> Result<ExitCode, CliError> {
    let client = client(args)?;
    let status = match &args.command {
        ClusterCommand::Status => client.cluster_status()?,
        ClusterCommand::AddLearner { id, url } => {
            let (status, caught_up) = client.add_learner(*id, url)?;
            if !caught_up {
                eprintln!("kimberlite: node {id} is a learner, still catching up");
            }
            status
        }
        ClusterCommand::Promote { id } => client.promote(*id)?,
        ClusterCommand::Remove { id } => client.remove_node(*id)?,
    };
    print(&status, args.json)?;
    Ok(ExitCode::SUCCESS)
}
