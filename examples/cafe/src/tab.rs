//! The tab: what a table ordered, what was served, and the bill.

use esrc::Aggregate;
use serde::{Deserialize, Serialize};

/// An item on the menu, as ordered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuItem {
    /// Its number on the menu.
    pub menu_number: u32,
    /// What it is.
    pub description: String,
    /// Drinks are served by the waiter; food goes to the kitchen first.
    pub is_drink: bool,
    /// Its price, in cents.
    pub price: u64,
}

/// What the staff ask of a tab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TabCommand {
    /// Opens a tab for a table.
    OpenTab {
        /// The table.
        table_number: u32,
        /// Who serves it.
        waiter: String,
    },
    /// Orders drinks and/or food.
    PlaceOrder {
        /// The items ordered.
        items: Vec<MenuItem>,
    },
    /// The waiter brought these drinks.
    MarkDrinksServed {
        /// Their menu numbers.
        menu_numbers: Vec<u32>,
    },
    /// The kitchen prepared these dishes.
    MarkFoodPrepared {
        /// Their menu numbers.
        menu_numbers: Vec<u32>,
    },
    /// The waiter brought these dishes.
    MarkFoodServed {
        /// Their menu numbers.
        menu_numbers: Vec<u32>,
    },
    /// The table pays (anything above the bill is the tip).
    CloseTab {
        /// The amount paid, in cents.
        amount_paid: u64,
    },
}

/// What happened to a tab. Its category is `Tab`; `aggregate` links it to [`Tab`], so
/// that tests start from events alone (`given_events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, esrc::Event)]
#[esrc(aggregate = Tab)]
pub enum TabEvent {
    /// A tab was opened.
    TabOpened {
        /// The table.
        table_number: u32,
        /// Who serves it.
        waiter: String,
    },
    /// Drinks were ordered.
    DrinksOrdered {
        /// The drinks.
        items: Vec<MenuItem>,
    },
    /// Food was ordered.
    FoodOrdered {
        /// The dishes.
        items: Vec<MenuItem>,
    },
    /// Drinks were served.
    DrinksServed {
        /// Their menu numbers.
        menu_numbers: Vec<u32>,
    },
    /// Food was prepared.
    FoodPrepared {
        /// Their menu numbers.
        menu_numbers: Vec<u32>,
    },
    /// Food was served.
    FoodServed {
        /// Their menu numbers.
        menu_numbers: Vec<u32>,
    },
    /// The tab was paid and closed.
    TabClosed {
        /// What was paid, in cents.
        amount_paid: u64,
        /// What the served items cost.
        order_value: u64,
        /// The difference.
        tip_value: u64,
    },
}

/// Why a tab refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TabError {
    /// The tab is not open.
    #[error("the tab is not open")]
    TabNotOpen,
    /// A drink was marked served that is not waiting to be served.
    #[error("those drinks are not outstanding")]
    DrinksNotOutstanding,
    /// A dish was marked prepared that is not waiting for the kitchen.
    #[error("that food is not outstanding")]
    FoodNotOutstanding,
    /// A dish was marked served before the kitchen prepared it.
    #[error("that food has not been prepared")]
    FoodNotPrepared,
    /// The amount paid does not cover the bill.
    #[error("the amount paid does not cover the bill")]
    MustPayEnough,
    /// Items are still to be served.
    #[error("the tab still has unserved items")]
    TabHasUnservedItems,
}

/// A table's tab.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, esrc::Versioned)]
pub struct Tab {
    open: bool,
    table_number: u32,
    outstanding_drinks: Vec<MenuItem>,
    outstanding_food: Vec<MenuItem>,
    prepared_food: Vec<MenuItem>,
    served_value: u64,
}

/// Whether every number is in `items` (as many times as it is asked for).
fn all_in(items: &[MenuItem], numbers: &[u32]) -> bool {
    let mut left: Vec<u32> = items.iter().map(|item| item.menu_number).collect();
    numbers
        .iter()
        .all(|number| match left.iter().position(|n| n == number) {
            Some(index) => {
                left.swap_remove(index);
                true
            }
            None => false,
        })
}

/// Removes one item per number from `items`, returning what was removed.
fn take(items: &mut Vec<MenuItem>, numbers: &[u32]) -> Vec<MenuItem> {
    numbers
        .iter()
        .filter_map(|number| {
            let index = items.iter().position(|item| item.menu_number == *number)?;
            Some(items.remove(index))
        })
        .collect()
}

impl Tab {
    /// Whether the tab is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The table the tab was opened for.
    pub fn table_number(&self) -> u32 {
        self.table_number
    }

    /// The value of what was served so far, in cents.
    pub fn served_value(&self) -> u64 {
        self.served_value
    }

    fn has_unserved_items(&self) -> bool {
        !(self.outstanding_drinks.is_empty()
            && self.outstanding_food.is_empty()
            && self.prepared_food.is_empty())
    }
}

impl Aggregate for Tab {
    type Command = TabCommand;
    type Event = TabEvent;
    type Error = TabError;

    fn process(&self, command: TabCommand) -> Result<Vec<TabEvent>, TabError> {
        use TabCommand::*;
        match command {
            OpenTab {
                table_number,
                waiter,
            } => Ok(vec![TabEvent::TabOpened {
                table_number,
                waiter,
            }]),
            _ if !self.open => Err(TabError::TabNotOpen),
            PlaceOrder { items } => {
                let (drinks, food): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.is_drink);
                let mut events = Vec::new();
                if !drinks.is_empty() {
                    events.push(TabEvent::DrinksOrdered { items: drinks });
                }
                if !food.is_empty() {
                    events.push(TabEvent::FoodOrdered { items: food });
                }
                Ok(events)
            }
            MarkDrinksServed { menu_numbers } => {
                if !all_in(&self.outstanding_drinks, &menu_numbers) {
                    return Err(TabError::DrinksNotOutstanding);
                }
                Ok(vec![TabEvent::DrinksServed { menu_numbers }])
            }
            MarkFoodPrepared { menu_numbers } => {
                if !all_in(&self.outstanding_food, &menu_numbers) {
                    return Err(TabError::FoodNotOutstanding);
                }
                Ok(vec![TabEvent::FoodPrepared { menu_numbers }])
            }
            MarkFoodServed { menu_numbers } => {
                if !all_in(&self.prepared_food, &menu_numbers) {
                    return Err(TabError::FoodNotPrepared);
                }
                Ok(vec![TabEvent::FoodServed { menu_numbers }])
            }
            CloseTab { amount_paid } => {
                if self.has_unserved_items() {
                    return Err(TabError::TabHasUnservedItems);
                }
                if amount_paid < self.served_value {
                    return Err(TabError::MustPayEnough);
                }
                Ok(vec![TabEvent::TabClosed {
                    amount_paid,
                    order_value: self.served_value,
                    tip_value: amount_paid - self.served_value,
                }])
            }
        }
    }

    fn apply(mut self, event: &TabEvent) -> Self {
        match event {
            TabEvent::TabOpened { table_number, .. } => {
                self.open = true;
                self.table_number = *table_number;
            }
            TabEvent::DrinksOrdered { items } => {
                self.outstanding_drinks.extend(items.iter().cloned())
            }
            TabEvent::FoodOrdered { items } => self.outstanding_food.extend(items.iter().cloned()),
            TabEvent::DrinksServed { menu_numbers } => {
                let served = take(&mut self.outstanding_drinks, menu_numbers);
                self.served_value += served.iter().map(|item| item.price).sum::<u64>();
            }
            TabEvent::FoodPrepared { menu_numbers } => {
                let prepared = take(&mut self.outstanding_food, menu_numbers);
                self.prepared_food.extend(prepared);
            }
            TabEvent::FoodServed { menu_numbers } => {
                let served = take(&mut self.prepared_food, menu_numbers);
                self.served_value += served.iter().map(|item| item.price).sum::<u64>();
            }
            TabEvent::TabClosed { .. } => self.open = false,
        }
        self
    }
}
