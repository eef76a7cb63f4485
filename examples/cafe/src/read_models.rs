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
            Some(saved) => {
                serde_json::from_slice(&saved.payload).map_err(|source| Error::Format {
                    category: M::NAME.to_owned(),
                    position: saved.position,
                    schema_version: saved.schema_version,
                    source: source.into(),
                })?
            }
            None => Persisted::default(),
        };
        Ok(Self { store, kept })
    }

    /// The model and the position it reflects.
    pub fn kept(&self) -> &Persisted<M> {
        &self.kept
    }

    async fn save(&self) -> Result<(), Error> {
        let payload = serde_json::to_vec(&self.kept).map_err(|source| Error::Encode {
            category: M::NAME.to_owned(),
            source,
        })?;
        let snapshot = Snapshot {
            // The store keeps the snapshot with the highest version: the newest model.
            version: Version(self.kept.position.get()),
            position: self.kept.position,
            schema_version: 1,
            payload: payload.into(),
        };
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

/// Every open tab, by tab id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTabs {
    /// The open tabs.
    pub tabs: BTreeMap<Uuid, OpenTab>,
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
