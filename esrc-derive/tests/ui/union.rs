#[derive(esrc_core::Event)]
union Bits {
    a: u32,
    b: f32,
}

fn main() {}
