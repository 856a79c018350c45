//! How rolecall builds its AWS clients: region and endpoint from flags or environment,
//! credentials from the SDK's default chain (environment, IRSA, EKS Pod Identity, IMDS).

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

/// AWS settings shared by every subcommand that talks to AWS.
#[derive(clap::Args, Clone, Debug)]
pub struct AwsArgs {
    /// AWS region for EC2 and STS calls (IAM is global).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// Send every AWS call to this endpoint instead of AWS, for moto or LocalStack
    /// (for example http://127.0.0.1:5000).
    #[arg(long, env = "ROLECALL_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// The longest one attempt of an AWS call may take (`20s`, `1m`): a hung call must not
    /// hold a reconcile, and its turn at the concurrency limit, forever.
    #[arg(long, env = "ROLECALL_AWS_ATTEMPT_TIMEOUT", default_value = "20s",
        value_parser = crate::cli::parse_duration)]
    pub aws_attempt_timeout: Duration,

    /// The longest one AWS call may take with its retries.
    #[arg(long, env = "ROLECALL_AWS_CALL_TIMEOUT", default_value = "60s",
        value_parser = crate::cli::parse_duration)]
    pub aws_call_timeout: Duration,
}

impl Default for AwsArgs {
    /// The flags' defaults, for callers that build the arguments in code.
    fn default() -> Self {
        Self {
            region: None,
            aws_endpoint_url: None,
            aws_attempt_timeout: Duration::from_secs(20),
            aws_call_timeout: Duration::from_secs(60),
        }
    }
}

impl AwsArgs {
    /// Resolves region and credentials the way the SDK does, with our overrides on top.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(self.aws_attempt_timeout)
                .operation_timeout(self.aws_call_timeout)
                .build(),
        );
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &self.aws_endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        loader.load().await
    }
}

/// The AWS clients rolecall uses, built from one configuration.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub sts: aws_sdk_sts::Client,
    config: SdkConfig,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            iam: aws_sdk_iam::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            config: config.clone(),
        }
    }

    /// The same clients acting as `role_arn` (another account's role), through STS
    /// AssumeRole with these clients' credentials. The SDK caches the session and renews it
    /// before it expires; nothing is called until the first request.
    pub async fn assuming(&self, role_arn: &str, external_id: Option<&str>) -> Self {
        let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("rolecall")
            .configure(&self.config);
        if let Some(id) = external_id {
            provider = provider.external_id(id);
        }
        let provider = provider.build().await;
        let config = self
            .config
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        Self::new(&config)
    }

    pub async fn from_args(args: &AwsArgs) -> Self {
        Self::new(&args.load().await)
    }
}
