//! The `bear` binary: everything lives in bear-cli; this only hands over the process.

fn main() -> std::process::ExitCode {
    bear_cli::main()
}
