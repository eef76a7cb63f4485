#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(name = "tab.opened")]
struct Opened;

fn main() {}
