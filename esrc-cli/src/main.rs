//! `esrc`, the command line of esrc: look into an event store, follow it, copy it to
//! another backend, export and import it. See the crate's README for every command.

/// Prints a line on standard output, like `println!`, in a function returning
/// `anyhow::Result`: a closed pipe (`esrc export … | head`) ends the program quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_line(format_args!($($arg)*))?
    };
}

mod catalog;
mod cli;
mod copy;
mod legacy;
mod options;
mod projection;
mod read;
mod record;
mod status;

use std::process::ExitCode;

use clap::Parser;

/// Input that cannot be used (a malformed line of an import file): exit status 65.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DataError(pub(crate) String);

/// Stopped by Ctrl-C before the work was done: exit status 130.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Interrupted(pub(crate) String);

/// Standard output was closed by the reader: not an error.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub(crate) struct ClosedPipe;

/// An I/O error writing standard output, with a closed pipe made [`ClosedPipe`].
pub(crate) fn stdout_error(error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        ClosedPipe.into()
    } else {
        anyhow::Error::new(error).context("cannot write to standard output")
    }
}

pub(crate) fn write_line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stdout().lock(), "{args}").map_err(stdout_error)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<ClosedPipe>().is_some() => ExitCode::SUCCESS,
        Err(error) => {
            let mut said = error.to_string();
            eprintln!("error: {said}");
            for cause in error.chain().skip(1) {
                // Many errors repeat their cause in their own message: say it once.
                let text = cause.to_string();
                if !said.contains(&text) {
                    eprintln!("  caused by: {text}");
                    said = text;
                }
            }
            if error.downcast_ref::<DataError>().is_some() {
                ExitCode::from(65)
            } else if error.downcast_ref::<Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
