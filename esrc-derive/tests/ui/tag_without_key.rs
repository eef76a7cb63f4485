#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
enum CourseEvent {
    Renamed(#[esrc(tag)] String),
}

fn main() {}
