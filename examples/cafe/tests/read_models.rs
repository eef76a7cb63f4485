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
