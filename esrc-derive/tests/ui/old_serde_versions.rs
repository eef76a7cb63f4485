#[derive(serde::Serialize, serde::Deserialize)]
struct OpenedV1;

#[derive(serde::Serialize, esrc_core::Event)]
#[esrc(serde(version = 2, previous_version = OpenedV1))]
struct Opened;

fn main() {}
