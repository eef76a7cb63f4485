#![doc = include_str!("../README.md")]

mod config;
mod read;
mod snapshot;
mod store;
mod subscribe;

pub use config::MemoryStoreBuilder;
pub use store::MemoryStore;
