#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(event(keep_suffix))]
struct TabEvent;

fn main() {}
