//! Thin wrappers over the AWS SDK clients, and the configuration they share. They return
//! rolecall's own small structs and classified errors; no business logic lives here.

pub mod calls;
pub mod config;
pub mod ec2;
pub mod error;
pub mod iam;

pub use calls::{CallCount, CallKey, CallKind, CallLog, Outcome, ServiceCalls};
pub use config::{AwsArgs, AwsClients};
pub use ec2::Ec2;
pub use error::{AwsError, ErrorClass};
pub use iam::Iam;
