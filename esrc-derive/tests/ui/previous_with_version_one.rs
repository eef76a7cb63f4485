#[derive(serde::Deserialize, esrc_core::Versioned)]
struct OpenedV1;

#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
#[esrc(version = 1, previous = OpenedV1)]
struct Opened;

fn main() {}
