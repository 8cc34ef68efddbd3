//! The `outreach` binary: parse the command line, run the command, map the
//! result to an exit status (0 ok, 1 something the user must fix) and print
//! the whole cause chain once.

use std::process::ExitCode;

use clap::Parser;
use outreach::commands::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // A mistake on the command line is one the user must fix: 1,
            // like every other (clap would say 2); help and version are 0.
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !matches!(cli.command, Command::Run) {
        quiet_on_closed_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A command whose output is cut short (`outreach tasks list | head -3`) ends
/// quietly, as other command line tools do, instead of panicking on the next
/// line it prints: the default action of SIGPIPE, which Rust programs ignore.
/// Not for the daemon, which must outlive a closed log stream or socket.
#[allow(unsafe_code)]
fn quiet_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal before any other
    // thread exists; no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
