//! The `lifeboat` binary: parse the command line and run it.

fn main() {
    std::process::exit(lifeboat::cli::main());
}
