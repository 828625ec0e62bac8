//! The skip log: one line per skipped test in the file that `$TDQ_SKIP_LOG`
//! names, listed by `scripts/test.sh` at its end. Plain `std`, so that the
//! test crates that cannot depend on the host crate (`gpu`'s) include this
//! file by path and log their skips the same way.

use std::io::Write;

/// File that names the skipped tests, one line each, when the test command
/// sets it (`scripts/test.sh` prints it as its closing summary).
pub const SKIP_LOG_ENV: &str = "TDQ_SKIP_LOG";

/// Records a skipped test: `SKIPPED what: reason` on stderr, and one line in
/// the file named by `$TDQ_SKIP_LOG` when set, so the test command can list
/// every skip at its end (the harness captures a passing test's output).
pub fn record_skip(what: &str, reason: &str) {
    let line = format!("SKIPPED {what}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os(SKIP_LOG_ENV).filter(|v| !v.is_empty()) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            // One write per line: concurrent test binaries append to the same file.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}
