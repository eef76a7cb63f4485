//! The NATS store against the whole shared suite, one stream and prefix per test.

mod common;

esrc_conformance::conformance_tests!(async { common::nats().await.map(common::Stores::new) });
