//! The workloads of `esrc-bench`, on esrc and on raw clients.

pub mod chart;
pub mod cost;
pub mod decisions;
pub mod layout;
pub mod model;
pub mod raw;
pub mod report;
pub mod workloads;

/// A boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
