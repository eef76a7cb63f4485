#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(name = "A", name = "B")]
struct Opened;

fn main() {}
