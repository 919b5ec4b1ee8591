//! The `flexc` command-line tool; everything lives in the library's `cli` module.

fn main() {
    std::process::exit(flexc::cli::main());
}
