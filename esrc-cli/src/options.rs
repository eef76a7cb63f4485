//! `esrc options`: each store's options by name, from the store's own table.

use esrc::backend::{StoreOption, StoreOptions};
use esrc::memory::MemoryStoreBuilder;
use esrc::nats::NatsStoreBuilder;
use esrc::postgres::PgStoreBuilder;

use crate::status::new_table;

/// Prints the option table of `store` (or of every store).
pub(crate) fn print(store: Option<&str>) -> anyhow::Result<()> {
    let tables = [
        table::<MemoryStoreBuilder>("memory:"),
        table::<PgStoreBuilder>("postgres://"),
        table::<NatsStoreBuilder>("nats://"),
    ];
    let wanted: Vec<_> = tables
        .iter()
        .filter(|(name, _, _)| store.is_none_or(|store| store == *name))
        .collect();
    if wanted.is_empty() {
        anyhow::bail!(
            "no store `{}`: use `memory`, `postgres` or `nats`",
            store.unwrap_or_default()
        );
    }
    for (name, scheme, options) in wanted {
        out!("{name} ({scheme}…?option=value&…)");
        let mut table = new_table(&["option", "meaning", "default"]);
        for option in options.iter() {
            table.add_row([option.name, option.meaning, option.default]);
        }
        out!("{table}\n");
    }
    Ok(())
}

fn table<B: StoreOptions>(
    scheme: &'static str,
) -> (&'static str, &'static str, &'static [StoreOption]) {
    (B::STORE, scheme, B::OPTIONS)
}
