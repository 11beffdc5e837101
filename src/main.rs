//! The `convexformer` command line: see `convexformer --help`.

use clap::Parser;

fn main() {
    let cli = convexformer::cli::Cli::parse();
    if let Err(e) = convexformer::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
