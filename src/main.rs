use clap::Parser;
use minivgg::cli::{run, Cli, UsageError};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Bad flags exit 2, as clap's own parse errors do; everything else 1.
            ExitCode::from(if err.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            })
        }
    }
}
