//! The read models, fed by projectors on the memory store, and their resumption.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cafe::{ChefTodoList, MenuItem, OpenTabs, ReadModel, ReadModelProjection, Tab, TabCommand};
use esrc::memory::MemoryStore;
use esrc::projector::Projector;
use esrc::{PublishExt, Root};
use uuid::Uuid;

fn item(menu_number: u32, is_drink: bool, price: u64) -> MenuItem {
    MenuItem {
        menu_number,
        description: format!("item {menu_number}"),
        is_drink,
        price,
    }
}

async fn run<M: ReadModel + Clone>(store: &MemoryStore, until: esrc::Position) -> M {
    let projection = ReadModelProjection::<MemoryStore, M>::load(store.clone())
        .await
        .unwrap();
    let handle = Projector::new(store.clone(), M::NAME, projection).spawn();
    tokio::time::timeout(Duration::from_secs(30), async {
        while handle.progress().projected() < until {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    handle.stop().await.unwrap().kept().model.clone()
}

#[tokio::test]
async fn open_tabs_and_the_chef_follow_the_day_and_resume() {
    let store = MemoryStore::new();
    let tab = Uuid::now_v7();
    let mut root = Root::<Tab>::new(tab);
    for command in [
        TabCommand::OpenTab {
            table_number: 7,
            waiter: "Ann".into(),
        },
        TabCommand::PlaceOrder {
            items: vec![
                item(1, true, 200),
                item(10, false, 900),
                item(11, false, 500),
            ],
        },
        TabCommand::MarkDrinksServed {
            menu_numbers: vec![1],
        },
        TabCommand::MarkFoodPrepared {
            menu_numbers: vec![10],
        },
    ] {
        store.try_write(&mut root, command).await.unwrap();
    }
    let open: OpenTabs = run(&store, root.position()).await;
    let chef: ChefTodoList = run(&store, root.position()).await;
    let seven = &open.tabs[&tab];
    assert_eq!(seven.table_number, 7);
    assert_eq!(
        seven
            .to_serve
            .iter()
            .map(|i| i.menu_number)
            .collect::<Vec<_>>(),
        [10]
    );
    assert_eq!(
        seven
            .in_preparation
            .iter()
            .map(|i| i.menu_number)
            .collect::<Vec<_>>(),
        [11]
    );
    assert_eq!(seven.total(), 200);
    assert_eq!(
        chef.todo[&tab]
            .items
            .iter()
            .map(|i| i.menu_number)
            .collect::<Vec<_>>(),
        [11]
    );

    // A second run resumes from the saved model and the checkpoints.
    for command in [
        TabCommand::MarkFoodPrepared {
            menu_numbers: vec![11],
        },
        TabCommand::MarkFoodServed {
            menu_numbers: vec![10, 11],
        },
        TabCommand::CloseTab { amount_paid: 1_600 },
    ] {
        store.try_write(&mut root, command).await.unwrap();
    }
    let open: OpenTabs = run(&store, root.position()).await;
    let chef: ChefTodoList = run(&store, root.position()).await;
    assert!(open.tabs.is_empty(), "the closed tab left the open tabs");
    assert!(chef.todo.is_empty(), "nothing left to cook");
}

/// The model is saved before the checkpoint: even if the checkpoint lags behind (a
/// crash), no event is applied twice.
#[tokio::test]
async fn a_model_ahead_of_its_checkpoint_skips_what_it_holds() {
    use esrc::Position;
    let store = MemoryStore::new();
    let tab = Uuid::now_v7();
    let mut root = Root::<Tab>::new(tab);
    for command in [
        TabCommand::OpenTab {
            table_number: 3,
            waiter: "Ben".into(),
        },
        TabCommand::PlaceOrder {
            items: vec![item(1, true, 200)],
        },
    ] {
        store.try_write(&mut root, command).await.unwrap();
    }
    let _: OpenTabs = run(&store, root.position()).await;
    // A projector with no checkpoint (as if the crash lost it) replays from the first
    // event into the saved model.
    let projection = ReadModelProjection::<MemoryStore, OpenTabs>::load(store.clone())
        .await
        .unwrap();
    assert_eq!(projection.kept().position, root.position());
    let again = Projector::new(store.clone(), "open-tabs-replayed", projection).spawn();
    tokio::time::timeout(Duration::from_secs(30), async {
        while again.progress().projected() < root.position() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let model = again.stop().await.unwrap();
    assert_eq!(
        model.kept().model.tabs[&tab].to_serve.len(),
        1,
        "the drink was not ordered twice"
    );
    assert!(model.kept().position >= Position(2));
}

fn named(menu_number: u32, description: &str, is_drink: bool, price: u64) -> MenuItem {
    MenuItem {
        menu_number,
        description: description.to_owned(),
        is_drink,
        price,
    }
}

/// The tutorial's queries: active tables, the tab and the invoice of a table (with
/// whether something is unserved), and each waiter's to-do list, with quantities.
#[test]
fn the_open_tabs_answer_the_tutorials_queries() {
    use cafe::TabEvent;
    let soup = named(11, "Soup", false, 700);
    let coke = named(1, "Coke", true, 250);
    let (four, nine) = (Uuid::now_v7(), Uuid::now_v7());
    let mut tabs = OpenTabs::default();
    let events = [
        (
            four,
            TabEvent::TabOpened {
                table_number: 4,
                waiter: "Ann".into(),
            },
        ),
        (
            nine,
            TabEvent::TabOpened {
                table_number: 9,
                waiter: "Ben".into(),
            },
        ),
        (
            four,
            TabEvent::FoodOrdered {
                items: vec![soup.clone(), soup.clone()],
            },
        ),
        (
            four,
            TabEvent::DrinksOrdered {
                items: vec![coke.clone(), coke.clone(), coke.clone()],
            },
        ),
        (
            four,
            TabEvent::FoodPrepared {
                menu_numbers: vec![11],
            },
        ),
        (
            four,
            TabEvent::DrinksServed {
                menu_numbers: vec![1, 1],
            },
        ),
        (
            nine,
            TabEvent::DrinksOrdered {
                items: vec![coke.clone()],
            },
        ),
        (
            nine,
            TabEvent::DrinksServed {
                menu_numbers: vec![1],
            },
        ),
    ];
    for (tab, event) in &events {
        tabs.apply(*tab, event);
    }
    assert_eq!(tabs.active_table_numbers(), [4, 9]);
    assert_eq!(tabs.tab_id_for_table(9), Some(nine));
    assert_eq!(tabs.tab_id_for_table(5), None);

    // Two soups ordered, one prepared: it reads as such.
    let tab = tabs.tab_for_table(4).unwrap();
    let show = |items: &[MenuItem]| {
        cafe::lines(items)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(show(&tab.in_preparation), "Soup");
    assert_eq!(show(&tab.to_serve), "Coke, Soup");
    assert_eq!(show(&tab.served), "2× Coke");

    let invoice = tabs.invoice_for_table(4).unwrap();
    assert_eq!(invoice.tab_id, four);
    assert_eq!(invoice.total, 500);
    assert_eq!(invoice.items.len(), 1);
    assert_eq!(
        (invoice.items[0].quantity, invoice.items[0].total()),
        (2, 500)
    );
    assert!(invoice.has_unserved_items);
    let paid_up = tabs.invoice_for_table(9).unwrap();
    assert!(!paid_up.has_unserved_items);
    assert_eq!(paid_up.total, 250);

    let ann = tabs.todo_list_for_waiter("Ann");
    assert_eq!(ann.keys().copied().collect::<Vec<_>>(), [4]);
    assert_eq!(
        ann[&4].iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["Coke", "Soup"]
    );
    assert!(
        tabs.todo_list_for_waiter("Ben").is_empty(),
        "Ben has served everything"
    );

    tabs.apply(
        nine,
        &TabEvent::TabClosed {
            amount_paid: 300,
            order_value: 250,
            tip_value: 50,
        },
    );
    assert_eq!(tabs.active_table_numbers(), [4]);
}
