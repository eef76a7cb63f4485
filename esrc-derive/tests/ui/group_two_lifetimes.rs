#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
struct NoteEvent<'a> {
    text: &'a str,
}

#[derive(esrc_core::EventGroup)]
enum Feed<'a, 'b> {
    Note(NoteEvent<'a>),
    Other(NoteEvent<'b>),
}

fn main() {}
