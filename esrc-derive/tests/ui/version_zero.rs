#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(version = 0)]
struct Opened;

fn main() {}
