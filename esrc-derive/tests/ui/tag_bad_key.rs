#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
struct Registered {
    #[esrc(tag = "user name")]
    username: String,
}

fn main() {}
