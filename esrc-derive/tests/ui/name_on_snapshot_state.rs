#[derive(serde::Serialize, esrc_core::Versioned)]
#[esrc(name = "Tab")]
struct TabState;

fn main() {}
