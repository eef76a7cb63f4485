//! The read models, and how they survive restarts.
//!
//! Each read model keeps the position of the last event applied to it and saves itself
//! (in the store's snapshot store) after every event, before its projector checkpoints.
//! Restarted, the projector resumes from its checkpoint, which is never ahead of the
//! saved model, and the model skips what it already holds: no event is lost or applied
//! twice, on any store.

use std::collections::BTreeMap;

use esrc::{Context, Error, Position, Project, Snapshot, SnapshotStore, Version};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{MenuItem, TabEvent};

/// A read model fed by the tab events.
pub trait ReadModel: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its name: the projector's name and the key it is saved under.
    const NAME: &'static str;

    /// Applies one event of the tab `tab`.
    fn apply(&mut self, tab: Uuid, event: &TabEvent);
}

/// A read model with the position of the last event applied to it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Persisted<M> {
    /// The position of the last event applied.
    pub position: Position,
    /// The model.
    pub model: M,
}

/// The projection that keeps a [`ReadModel`] and saves it as it goes.
#[derive(Debug)]
pub struct ReadModelProjection<S, M> {
    store: S,
    kept: Persisted<M>,
}

impl<S: SnapshotStore, M: ReadModel> ReadModelProjection<S, M> {
    /// Loads the saved model from `store` (or starts empty).
    pub async fn load(store: S) -> Result<Self, Error> {
        let kept = match store.load_snapshot(M::NAME, Uuid::nil()).await? {
            Some(saved) => serde_json::from_slice(&saved.payload).map_err(|source| {
                Error::format(
                    M::NAME.to_owned(),
                    saved.position,
                    saved.schema_version,
                    source.into(),
                )
            })?,
            None => Persisted::default(),
        };
        Ok(Self { store, kept })
    }

    /// The model and the position it reflects.
    pub fn kept(&self) -> &Persisted<M> {
        &self.kept
    }

    async fn save(&self) -> Result<(), Error> {
        let payload = serde_json::to_vec(&self.kept)
            .map_err(|source| Error::encode(M::NAME.to_owned(), source))?;
        // The store keeps the snapshot with the highest version: the newest model.
        let version = Version(self.kept.position.get());
        let snapshot = Snapshot::new(version, self.kept.position, 1, payload);
        self.store
            .save_snapshot(M::NAME, Uuid::nil(), snapshot)
            .await
    }
}

impl<S, M> Project for ReadModelProjection<S, M>
where
    S: SnapshotStore + 'static,
    M: ReadModel,
{
    type EventGroup<'de> = TabEvent;
    type Error = Error;

    async fn project<'de>(&mut self, context: Context<'de, TabEvent>) -> Result<(), Error> {
        if context.position() <= self.kept.position {
            return Ok(());
        }
        self.kept
            .model
            .apply(context.aggregate_id(), context.event());
        self.kept.position = context.position();
        self.save().await
    }
}

/// One open tab, as the waiters see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTab {
    /// The table.
    pub table_number: u32,
    /// Who serves it.
    pub waiter: String,
    /// Drinks ordered and dishes prepared, waiting to be served.
    pub to_serve: Vec<MenuItem>,
    /// Dishes in the kitchen.
    pub in_preparation: Vec<MenuItem>,
    /// What was served: the invoice.
    pub served: Vec<MenuItem>,
}

impl OpenTab {
    /// The invoice total, in cents.
    pub fn total(&self) -> u64 {
        self.served.iter().map(|item| item.price).sum()
    }
}

/// Items of one kind on a tab, counted: "2× Soup".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The menu number.
    pub menu_number: u32,
    /// What it is.
    pub description: String,
    /// How many.
    pub quantity: u32,
    /// The price of one, in cents.
    pub price: u64,
}

impl Line {
    /// The price of them all, in cents.
    pub fn total(&self) -> u64 {
        self.price * u64::from(self.quantity)
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.quantity == 1 {
            f.write_str(&self.description)
        } else {
            write!(f, "{}× {}", self.quantity, self.description)
        }
    }
}

/// `items` counted by menu number, in the order they first appear.
pub fn lines(items: &[MenuItem]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    for item in items {
        match lines
            .iter_mut()
            .find(|line| line.menu_number == item.menu_number)
        {
            Some(line) => line.quantity += 1,
            None => lines.push(Line {
                menu_number: item.menu_number,
                description: item.description.clone(),
                quantity: 1,
                price: item.price,
            }),
        }
    }
    lines
}

/// The bill of one table, as the tutorial's `InvoiceForTable` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The tab.
    pub tab_id: Uuid,
    /// The table.
    pub table_number: u32,
    /// What was served, counted.
    pub items: Vec<Line>,
    /// The total, in cents.
    pub total: u64,
    /// Whether something is still to be served (then the tab cannot be closed).
    pub has_unserved_items: bool,
}

/// Every open tab, by tab id, with the tutorial's queries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTabs {
    /// The open tabs.
    pub tabs: BTreeMap<Uuid, OpenTab>,
}

impl OpenTabs {
    /// The numbers of the tables with an open tab, ascending.
    pub fn active_table_numbers(&self) -> Vec<u32> {
        let mut tables: Vec<u32> = self.tabs.values().map(|tab| tab.table_number).collect();
        tables.sort_unstable();
        tables
    }

    /// The id of the open tab of `table`.
    pub fn tab_id_for_table(&self, table: u32) -> Option<Uuid> {
        self.tabs
            .iter()
            .find(|(_, tab)| tab.table_number == table)
            .map(|(id, _)| *id)
    }

    /// The open tab of `table`: what is to serve, in preparation and served.
    pub fn tab_for_table(&self, table: u32) -> Option<&OpenTab> {
        self.tabs.values().find(|tab| tab.table_number == table)
    }

    /// The bill of `table`.
    pub fn invoice_for_table(&self, table: u32) -> Option<Invoice> {
        let tab_id = self.tab_id_for_table(table)?;
        let tab = &self.tabs[&tab_id];
        Some(Invoice {
            tab_id,
            table_number: table,
            items: lines(&tab.served),
            total: tab.total(),
            has_unserved_items: !tab.to_serve.is_empty() || !tab.in_preparation.is_empty(),
        })
    }

    /// What `waiter` has to bring, by table: drinks ordered and dishes prepared.
    pub fn todo_list_for_waiter(&self, waiter: &str) -> BTreeMap<u32, Vec<Line>> {
        self.tabs
            .values()
            .filter(|tab| tab.waiter == waiter && !tab.to_serve.is_empty())
            .map(|tab| (tab.table_number, lines(&tab.to_serve)))
            .collect()
    }
}

fn move_items(from: &mut Vec<MenuItem>, to: &mut Vec<MenuItem>, numbers: &[u32]) {
    for number in numbers {
        if let Some(index) = from.iter().position(|item| item.menu_number == *number) {
            to.push(from.remove(index));
        }
    }
}

impl ReadModel for OpenTabs {
    const NAME: &'static str = "open-tabs";

    fn apply(&mut self, tab: Uuid, event: &TabEvent) {
        if let TabEvent::TabOpened {
            table_number,
            waiter,
        } = event
        {
            self.tabs.insert(
                tab,
                OpenTab {
                    table_number: *table_number,
                    waiter: waiter.clone(),
                    ..OpenTab::default()
                },
            );
            return;
        }
        let Some(open) = self.tabs.get_mut(&tab) else {
            return;
        };
        match event {
            TabEvent::DrinksOrdered { items } => open.to_serve.extend(items.iter().cloned()),
            TabEvent::FoodOrdered { items } => open.in_preparation.extend(items.iter().cloned()),
            TabEvent::FoodPrepared { menu_numbers } => {
                move_items(&mut open.in_preparation, &mut open.to_serve, menu_numbers);
            }
            TabEvent::DrinksServed { menu_numbers } | TabEvent::FoodServed { menu_numbers } => {
                move_items(&mut open.to_serve, &mut open.served, menu_numbers);
            }
            TabEvent::TabClosed { .. } => {
                self.tabs.remove(&tab);
            }
            TabEvent::TabOpened { .. } => {}
        }
    }
}

/// Dishes one table is waiting for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dish {
    /// The table.
    pub table_number: u32,
    /// The dishes still to prepare.
    pub items: Vec<MenuItem>,
}

/// What the kitchen has to prepare, by tab.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChefTodoList {
    /// The dishes to prepare, per tab.
    pub todo: BTreeMap<Uuid, Dish>,
    tables: BTreeMap<Uuid, u32>,
}

impl ReadModel for ChefTodoList {
    const NAME: &'static str = "chef-todo-list";

    fn apply(&mut self, tab: Uuid, event: &TabEvent) {
        match event {
            TabEvent::TabOpened { table_number, .. } => {
                self.tables.insert(tab, *table_number);
            }
            TabEvent::FoodOrdered { items } => {
                let table_number = self.tables.get(&tab).copied().unwrap_or_default();
                let dish = self.todo.entry(tab).or_insert_with(|| Dish {
                    table_number,
                    items: Vec::new(),
                });
                dish.items.extend(items.iter().cloned());
            }
            TabEvent::FoodPrepared { menu_numbers } => {
                if let Some(dish) = self.todo.get_mut(&tab) {
                    move_items(&mut dish.items, &mut Vec::new(), menu_numbers);
                    if dish.items.is_empty() {
                        self.todo.remove(&tab);
                    }
                }
            }
            TabEvent::TabClosed { .. } => {
                self.tables.remove(&tab);
            }
            _ => {}
        }
    }
}
