use clap::Parser;
use minivgg::cli::{run, Cli, Interrupted, UsageError};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Bad flags exit 2, as clap's own parse errors do; an interrupted run 130, as a
            // shell reports Ctrl-C; everything else 1.
            let code = if err.downcast_ref::<UsageError>().is_some() {
                2
            } else if err.downcast_ref::<Interrupted>().is_some() {
                130
            } else {
                1
            };
            ExitCode::from(code)
        }
    }
}
