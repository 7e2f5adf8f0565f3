use std::process::ExitCode;

fn main() -> ExitCode {
    minivgg::cli::restore_sigpipe();
    ExitCode::from(minivgg::cli::main(std::env::args_os()))
}
