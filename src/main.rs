//! The `convexformer` command line: see `convexformer --help`. The binary
//! only parses arguments, calls the library and writes files.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    cli::tune_process_for_training();
    if let Err(e) = cli::run(args) {
        if let Some(stopped) = e.downcast_ref::<cli::Interrupted>() {
            eprintln!("{stopped}");
            std::process::exit(cli::EXIT_INTERRUPTED);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
