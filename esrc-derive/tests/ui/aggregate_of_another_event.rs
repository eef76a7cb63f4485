use esrc_core::Aggregate;

#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
enum TabEvent {
    Opened,
}

// Links to an aggregate whose events are `TabEvent`, not this type.
#[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
#[esrc(aggregate = Tab)]
enum KitchenEvent {
    Cooked,
}

#[derive(Default)]
struct Tab;

impl Aggregate for Tab {
    type Command = ();
    type Event = TabEvent;
    type Error = std::convert::Infallible;
    fn process(&self, (): ()) -> Result<Vec<TabEvent>, Self::Error> {
        Ok(vec![])
    }
    fn apply(self, _: &TabEvent) -> Self {
        self
    }
}

fn main() {}
