#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
struct TabEvent;

#[derive(esrc_core::EventGroup)]
enum Feed {
    #[esrc(skip)]
    Tab(TabEvent),
}

fn main() {}
