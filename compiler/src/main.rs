//! The `flexc` command-line tool.

fn main() {
    println!("flexc");
}
