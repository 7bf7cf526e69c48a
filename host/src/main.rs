//! The `keystate` command: parse the command line, run it, print the error
//! once if it failed, and exit with the code of its kind (see `cli::exit`).

mod cli;

use std::panic::{AssertUnwindSafe, catch_unwind};

use cli::exit::ExitCode;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse_args();
    let json_errors = args.json_errors();
    match catch_unwind(AssertUnwindSafe(|| cli::run(args))) {
        Ok(Ok(())) => ExitCode::Success.into(),
        Ok(Err(error)) => {
            cli::report(&error, json_errors);
            ExitCode::of(error.kind()).into()
        }
        // The panic hook already printed the message.
        Err(_) => ExitCode::Internal.into(),
    }
}
