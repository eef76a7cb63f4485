//! The cafe of the Edument CQRS tutorial (cqrs.nu): a [`Tab`] aggregate and two read
//! models, [`OpenTabs`] and [`ChefTodoList`].

mod read_models;
mod tab;

pub use read_models::{
    ChefTodoList, Dish, Invoice, Line, OpenTab, OpenTabs, Persisted, ReadModel,
    ReadModelProjection, lines,
};
pub use tab::{MenuItem, Tab, TabCommand, TabError, TabEvent};

/// Formats cents as euros, e.g. `€12.50`.
pub fn euros(cents: u64) -> String {
    format!("€{}.{:02}", cents / 100, cents % 100)
}
