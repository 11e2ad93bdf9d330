//! The replication scenarios, in process over a simulated network (docs/TESTING.md, section
//! "Replication"). One binary, one file per scenario.

mod common;
mod divergence;
mod failover;
mod history;
mod learner;
mod partition;
mod power_loss;
mod pipeline;
mod replicate;
mod restart;
mod snapshot;
