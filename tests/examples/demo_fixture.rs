//! The firmware demo model, host side.
//!
//! `demo_fixture write <path>` regenerates the model file;
//! `demo_fixture expect <path>` prints the lines the firmware must print for
//! that model (used by `scripts/firmware-check.sh`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [cmd, path] if cmd == "write" => std::fs::write(path, tdquant_tests::demo_model())
            .map_err(|e| format!("writing {path}: {e}")),
        [cmd, path] if cmd == "expect" => std::fs::read(path)
            .map_err(|e| format!("reading {path}: {e}"))
            .and_then(|bytes| tdquant_tests::expected_firmware_lines(&bytes))
            .map(|lines| lines.iter().for_each(|l| println!("{l}"))),
        _ => Err("usage: demo_fixture write|expect <model.tdq>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
