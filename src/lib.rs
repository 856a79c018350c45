//! rolecall: a Kubernetes operator that keeps AWS IAM in the state manifests describe.

pub mod api;
pub mod aws;
pub mod cli;
pub mod conditions;
pub mod context;
pub mod controllers;
pub mod equivalence;
pub mod error;
pub mod faultproxy;
pub mod http;
pub mod imds;
pub mod leader;
pub mod report;
pub mod run;
pub mod telemetry;
pub mod tenancy;
pub mod wildcard;
