//! Thin wrappers over the AWS SDK clients, and the configuration they share.

pub mod config;

pub use config::{AwsArgs, AwsClients};
