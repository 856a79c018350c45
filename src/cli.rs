//! Command-line interface: one binary, one subcommand per job.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rolecall",
    version,
    about = "Keeps AWS IAM in the state Kubernetes manifests describe"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator: reconcile rolecall objects against AWS until SIGTERM.
    Run(crate::run::RunArgs),
    /// Print the CustomResourceDefinitions of all rolecall kinds as YAML.
    Crd {
        /// Write one file per CRD (`<plural>.<group>.yaml`) into this directory instead.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Serve a mock EC2 instance metadata service (IMDSv2) for one instance, answering from
    /// live AWS or moto state: its instance profile, role, and credentials minted for it.
    ImdsMock(crate::imds::ImdsArgs),
    /// Serve a fault-injecting proxy in front of an AWS endpoint (moto), for tests and benchmarks.
    FaultProxy(crate::faultproxy::FaultProxyArgs),
}
