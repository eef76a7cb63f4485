//! The cafe's own failures read as one line a person can act on, and exit with status 1.

use std::process::Command;

#[test]
fn a_store_that_cannot_be_reached_is_one_error_line_and_status_1() {
    let output = Command::new(env!("CARGO_BIN_EXE_cafe"))
        .args(["--store", "postgres://esrc@127.0.0.1:1/cafe"])
        .output()
        .expect("the cafe runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ")
            && first.contains("127.0.0.1:1")
            && !first.contains("Backend {"),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let distinct: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|line| line.trim_start_matches("  caused by: "))
        .collect();
    assert_eq!(distinct.len(), lines.len(), "no line twice: {stderr}");
}
