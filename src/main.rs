use std::process::ExitCode;

fn main() -> ExitCode {
    dual::cli::main()
}
