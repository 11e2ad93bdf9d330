//! The replication scenarios, in process over a simulated network (docs/TESTING.md, section
//! "Replication"). One binary, one file per scenario.

mod checkpoint;
mod common;
mod deposed;
mod divergence;
mod failover;
mod history;
mod leader_flush;
mod learner;
mod partition;
mod pipeline;
mod power_cut;
mod power_loss;
mod replicate;
mod restart;
mod snapshot;
mod syncs;
