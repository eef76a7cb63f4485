#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(event(name = "Tab"))]
struct TabEvent;

fn main() {}
