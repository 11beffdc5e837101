//! The `convexformer` command line: see `convexformer --help`.

use clap::Parser;

fn main() {
    let cli = convexformer::cli::Cli::parse();
    convexformer::baselines::tune_process_for_training();
    if let Err(e) = convexformer::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
