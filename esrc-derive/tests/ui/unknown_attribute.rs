#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(nmae = "Opened")]
struct Opened;

fn main() {}
