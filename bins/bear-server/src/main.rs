//! The `bear-server` binary. The REST API it will serve lives in bear-api, which is not written
//! yet, so for now the binary says so and exits with an error rather than pretend to serve.

fn main() -> std::process::ExitCode {
    eprintln!(
        "error: bear-server has no API to serve yet (bear-api is not implemented); \
         use the `bear` command-line tool"
    );
    std::process::ExitCode::FAILURE
}
