use std::process::ExitCode;

use clap::Parser;
use rolecall::api;
use rolecall::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_operator(args),
        Command::Crd { out_dir: None } => {
            print!("{}", api::crds_yaml());
            Ok(())
        }
        Command::Crd { out_dir: Some(dir) } => write_crds(&dir),
        Command::ImdsMock(args) => run_imds_mock(args),
        Command::FaultProxy(args) => run_fault_proxy(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rolecall: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_operator(args: rolecall::run::RunArgs) -> Result<(), std::io::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(rolecall::run::main(args))
        .map_err(std::io::Error::other)
}

fn run_imds_mock(args: rolecall::imds::ImdsArgs) -> Result<(), std::io::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(rolecall::imds::main(args))
        .map_err(std::io::Error::other)
}

fn run_fault_proxy(args: rolecall::faultproxy::FaultProxyArgs) -> Result<(), std::io::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(rolecall::faultproxy::main(args))
        .map_err(std::io::Error::other)
}

fn write_crds(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for crd in api::crds() {
        let yaml = serde_norway::to_string(&crd).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(api::crd_file_name(&crd)), yaml)?;
    }
    Ok(())
}
