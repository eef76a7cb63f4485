//! The tutorial's scenarios (cqrs.nu: "Testing", and the food scenarios it leaves as an
//! exercise), one test each, as Given/When/Then.

use cafe::{MenuItem, Tab, TabCommand, TabError, TabEvent};
use esrc::testing::{given, given_events};

fn drink(menu_number: u32, price: u64) -> MenuItem {
    MenuItem {
        menu_number,
        description: format!("drink {menu_number}"),
        is_drink: true,
        price,
    }
}

fn food(menu_number: u32, price: u64) -> MenuItem {
    MenuItem {
        menu_number,
        description: format!("food {menu_number}"),
        is_drink: false,
        price,
    }
}

fn opened() -> TabEvent {
    TabEvent::TabOpened {
        table_number: 42,
        waiter: "Derek".into(),
    }
}

fn drinks() -> Vec<MenuItem> {
    vec![drink(4, 250), drink(10, 350)]
}

fn dishes() -> Vec<MenuItem> {
    vec![food(16, 1_000), food(25, 1_200)]
}

#[test]
fn can_open_a_new_tab() {
    given::<Tab>([])
        .when(TabCommand::OpenTab {
            table_number: 42,
            waiter: "Derek".into(),
        })
        .then([opened()]);
}

#[test]
fn can_not_order_with_unopened_tab() {
    given::<Tab>([])
        .when(TabCommand::PlaceOrder { items: drinks() })
        .then_error(TabError::TabNotOpen);
}

#[test]
fn can_place_drinks_order() {
    given_events([opened()])
        .when(TabCommand::PlaceOrder { items: drinks() })
        .then([TabEvent::DrinksOrdered { items: drinks() }]);
}

#[test]
fn can_place_food_order() {
    given_events([opened()])
        .when(TabCommand::PlaceOrder { items: dishes() })
        .then([TabEvent::FoodOrdered { items: dishes() }]);
}

#[test]
fn can_place_food_and_drink_order() {
    let mut items = dishes();
    items.extend(drinks());
    given_events([opened()])
        .when(TabCommand::PlaceOrder { items })
        .then([
            TabEvent::DrinksOrdered { items: drinks() },
            TabEvent::FoodOrdered { items: dishes() },
        ]);
}

#[test]
fn ordered_drinks_can_be_served() {
    given_events([opened(), TabEvent::DrinksOrdered { items: drinks() }])
        .when(TabCommand::MarkDrinksServed {
            menu_numbers: vec![4, 10],
        })
        .then([TabEvent::DrinksServed {
            menu_numbers: vec![4, 10],
        }]);
}

#[test]
fn can_not_serve_an_unordered_drink() {
    given_events([
        opened(),
        TabEvent::DrinksOrdered {
            items: vec![drink(4, 250)],
        },
    ])
    .when(TabCommand::MarkDrinksServed {
        menu_numbers: vec![10],
    })
    .then_error(TabError::DrinksNotOutstanding);
}

#[test]
fn can_not_serve_an_ordered_drink_twice() {
    given_events([
        opened(),
        TabEvent::DrinksOrdered {
            items: vec![drink(4, 250)],
        },
        TabEvent::DrinksServed {
            menu_numbers: vec![4],
        },
    ])
    .when(TabCommand::MarkDrinksServed {
        menu_numbers: vec![4],
    })
    .then_error(TabError::DrinksNotOutstanding);
}

#[test]
fn ordered_food_can_be_marked_prepared() {
    given_events([opened(), TabEvent::FoodOrdered { items: dishes() }])
        .when(TabCommand::MarkFoodPrepared {
            menu_numbers: vec![16],
        })
        .then([TabEvent::FoodPrepared {
            menu_numbers: vec![16],
        }]);
}

#[test]
fn food_not_ordered_can_not_be_marked_prepared() {
    given_events([opened()])
        .when(TabCommand::MarkFoodPrepared {
            menu_numbers: vec![16],
        })
        .then_error(TabError::FoodNotOutstanding);
}

#[test]
fn can_not_mark_food_as_prepared_twice() {
    given_events([
        opened(),
        TabEvent::FoodOrdered {
            items: vec![food(16, 1_000)],
        },
        TabEvent::FoodPrepared {
            menu_numbers: vec![16],
        },
    ])
    .when(TabCommand::MarkFoodPrepared {
        menu_numbers: vec![16],
    })
    .then_error(TabError::FoodNotOutstanding);
}

#[test]
fn can_serve_prepared_food() {
    given_events([
        opened(),
        TabEvent::FoodOrdered { items: dishes() },
        TabEvent::FoodPrepared {
            menu_numbers: vec![16],
        },
    ])
    .when(TabCommand::MarkFoodServed {
        menu_numbers: vec![16],
    })
    .then([TabEvent::FoodServed {
        menu_numbers: vec![16],
    }]);
}

#[test]
fn can_not_serve_prepared_food_twice() {
    given_events([
        opened(),
        TabEvent::FoodOrdered { items: dishes() },
        TabEvent::FoodPrepared {
            menu_numbers: vec![16],
        },
        TabEvent::FoodServed {
            menu_numbers: vec![16],
        },
    ])
    .when(TabCommand::MarkFoodServed {
        menu_numbers: vec![16],
    })
    .then_error(TabError::FoodNotPrepared);
}

#[test]
fn can_not_serve_unordered_food() {
    given_events([opened()])
        .when(TabCommand::MarkFoodServed {
            menu_numbers: vec![16],
        })
        .then_error(TabError::FoodNotPrepared);
}

#[test]
fn can_not_mark_more_food_prepared_than_was_ordered() {
    given_events([
        opened(),
        TabEvent::FoodOrdered {
            items: vec![food(16, 1_000)],
        },
    ])
    .when(TabCommand::MarkFoodPrepared {
        menu_numbers: vec![16, 16],
    })
    .then_error(TabError::FoodNotOutstanding);
    // Two ordered, both prepared at once: fine; three at once: not.
    let two = given_events([
        opened(),
        TabEvent::FoodOrdered {
            items: vec![food(16, 1_000), food(16, 1_000)],
        },
    ]);
    two.when(TabCommand::MarkFoodPrepared {
        menu_numbers: vec![16, 16],
    })
    .then([TabEvent::FoodPrepared {
        menu_numbers: vec![16, 16],
    }]);
    two.when(TabCommand::MarkFoodPrepared {
        menu_numbers: vec![16, 16, 16],
    })
    .then_error(TabError::FoodNotOutstanding);
}

#[test]
fn can_not_serve_ordered_but_unprepared_food() {
    given_events([opened(), TabEvent::FoodOrdered { items: dishes() }])
        .when(TabCommand::MarkFoodServed {
            menu_numbers: vec![16],
        })
        .then_error(TabError::FoodNotPrepared);
}

fn served_drinks() -> Vec<TabEvent> {
    vec![
        opened(),
        TabEvent::DrinksOrdered { items: drinks() },
        TabEvent::DrinksServed {
            menu_numbers: vec![4, 10],
        },
    ]
}

#[test]
fn can_close_tab_by_paying_exact_amount() {
    given_events(served_drinks())
        .when(TabCommand::CloseTab { amount_paid: 600 })
        .then([TabEvent::TabClosed {
            amount_paid: 600,
            order_value: 600,
            tip_value: 0,
        }]);
}

#[test]
fn can_close_tab_with_tip() {
    given_events(served_drinks())
        .when(TabCommand::CloseTab { amount_paid: 700 })
        .then([TabEvent::TabClosed {
            amount_paid: 700,
            order_value: 600,
            tip_value: 100,
        }]);
}

#[test]
fn must_pay_enough_to_close_tab() {
    given_events(served_drinks())
        .when(TabCommand::CloseTab { amount_paid: 599 })
        .then_error(TabError::MustPayEnough);
}

#[test]
fn can_not_close_tab_twice() {
    let mut events = served_drinks();
    events.push(TabEvent::TabClosed {
        amount_paid: 600,
        order_value: 600,
        tip_value: 0,
    });
    given_events(events)
        .when(TabCommand::CloseTab { amount_paid: 600 })
        .then_error(TabError::TabNotOpen);
}

#[test]
fn can_not_close_tab_with_unserved_drinks_items() {
    given_events([opened(), TabEvent::DrinksOrdered { items: drinks() }])
        .when(TabCommand::CloseTab { amount_paid: 600 })
        .then_error(TabError::TabHasUnservedItems);
}

#[test]
fn can_not_close_tab_with_unprepared_food_items() {
    given_events([opened(), TabEvent::FoodOrdered { items: dishes() }])
        .when(TabCommand::CloseTab {
            amount_paid: 10_000,
        })
        .then_error(TabError::TabHasUnservedItems);
}

#[test]
fn can_not_close_tab_with_unserved_food_items() {
    given_events([
        opened(),
        TabEvent::FoodOrdered {
            items: vec![food(16, 1_000)],
        },
        TabEvent::FoodPrepared {
            menu_numbers: vec![16],
        },
    ])
    .when(TabCommand::CloseTab {
        amount_paid: 10_000,
    })
    .then_error(TabError::TabHasUnservedItems);
}
