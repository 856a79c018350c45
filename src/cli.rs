//! Command-line interface: one binary, one subcommand per job.

use std::path::PathBuf;
use std::time::Duration;

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

/// Parses a duration for a flag: `90s`, `10m`, `1h30m` (humantime's units) or a bare number of
/// seconds; zero and overflowing values are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        text.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too large a number of seconds"))?
    } else {
        humantime::parse_duration(text).map_err(|error| {
            format!("{text:?} is not a duration like 90s, 10m or 1h30m: {error}")
        })?
    };
    if duration.is_zero() {
        return Err("the period must be positive".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn overflowing_durations_are_refused() {
        assert!(parse_duration("99999999999999999999").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }
}
