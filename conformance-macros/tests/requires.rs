//! `#[requires(…)]` marks a test ignored exactly when what it needs was missing at build
//! time, and never with `ESRC_REQUIRE_BACKENDS=1`. This binary lists its own ignored tests
//! to check it.

use esrc_conformance_macros::requires;

#[requires(env = "ESRC_TEST_VARIABLE_THAT_IS_NEVER_SET")]
#[test]
fn needs_an_unset_variable() {}

// Cargo sets CARGO_PKG_NAME for every crate it compiles.
#[requires(env = "CARGO_PKG_NAME")]
#[test]
fn needs_a_set_variable() {}

#[requires(env = "CARGO_PKG_NAME", env = "ESRC_TEST_VARIABLE_THAT_IS_NEVER_SET")]
#[test]
fn needs_one_set_and_one_unset_variable() {}

#[test]
fn only_tests_whose_variables_were_unset_are_ignored() {
    let listed = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--list", "--ignored", "--format", "terse"])
        .output()
        .expect("the test binary lists its tests");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let mut ignored: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .collect();
    ignored.sort_unstable();
    let expected: &[&str] = if option_env!("ESRC_REQUIRE_BACKENDS") == Some("1") {
        &[]
    } else {
        &[
            "needs_an_unset_variable",
            "needs_one_set_and_one_unset_variable",
        ]
    };
    assert_eq!(ignored, expected, "{listed}");
}
