#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(keep_suffix, name = "Tab")]
struct TabEvent;

fn main() {}
