#![doc = include_str!("../README.md")]

mod store;
mod subscribe;

pub use store::MemoryStore;
