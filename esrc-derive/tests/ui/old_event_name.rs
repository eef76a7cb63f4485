#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(event(name = "TabEvent"))]
struct Tab;

fn main() {}
