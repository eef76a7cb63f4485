#[derive(esrc_core::EventGroup)]
struct Feed {
    tab: u32,
}

fn main() {}
