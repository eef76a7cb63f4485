//! The cases are listed in three places — the `pub async fn`s of `cases/`, the list in
//! `conformance_tests!` that makes a named test of each, and the table in the README —
//! and this test keeps the three the same, in the same order.

#![allow(clippy::expect_used)]

use std::collections::BTreeSet;

/// The names of the `pub async fn`s in `cases/`, topic by topic, in order.
fn cases() -> Vec<&'static str> {
    [
        include_str!("../src/cases/append.rs"),
        include_str!("../src/cases/read.rs"),
        include_str!("../src/cases/subscribe.rs"),
        include_str!("../src/cases/streams.rs"),
        include_str!("../src/cases/snapshot.rs"),
        include_str!("../src/cases/catalog.rs"),
        include_str!("../src/cases/payload.rs"),
        include_str!("../src/cases/projector.rs"),
        include_str!("../src/cases/decide.rs"),
    ]
    .into_iter()
    .flat_map(str::lines)
    .filter_map(|line| line.strip_prefix("pub async fn "))
    .filter_map(|rest| rest.split(['<', '(']).next())
    .collect()
}

/// The identifiers listed in `conformance_tests!`, in order.
fn macro_list() -> Vec<&'static str> {
    let source = include_str!("../src/macros.rs");
    let start = source.find("] $factory;").expect("the macro's case list");
    let list = &source[start..];
    let end = list.find('}').expect("the end of the case list");
    list[..end]
        .lines()
        .skip(1)
        .map(|line| line.trim().trim_end_matches(','))
        .filter(|name| !name.is_empty())
        .collect()
}

/// The cases named in the README's table, in order.
fn readme_table() -> Vec<&'static str> {
    include_str!("../README.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect()
}

#[test]
fn every_case_has_a_named_test_and_a_line_in_the_readme() {
    let cases = cases();
    assert!(cases.len() >= 30, "cases/ lists {} cases", cases.len());
    let distinct: BTreeSet<_> = cases.iter().collect();
    assert_eq!(distinct.len(), cases.len(), "a case is defined twice");
    assert_eq!(
        macro_list(),
        cases,
        "conformance_tests! lists other cases than cases/"
    );
    assert_eq!(
        readme_table(),
        cases,
        "the README's table lists other cases than cases/"
    );
}
