#![doc = include_str!("../README.md")]

mod checkpoint;
mod config;
mod core;
mod decide;
mod read;
mod snapshot;
mod store;
mod subscribe;

pub use config::MemoryStoreBuilder;
pub use core::MemoryStore;
