//! rolecall: a Kubernetes operator that keeps AWS IAM in the state manifests describe.

pub mod api;
pub mod aws;
pub mod cli;
