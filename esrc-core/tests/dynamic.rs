//! A store chosen at run time: a third-party store (defined here, as another crate would)
//! behind `AnyStore`, used through every extension trait and the projector.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esrc_core::projector::Projector;
use esrc_core::{
    Aggregate, AnyStore, Appended, CheckpointStore, Condition, Context, Decide, DecideExt,
    Decision, Envelope, Error, Expected, Item, NewEvent, Position, Project, ProjectExt, Publish,
    PublishExt, Query, ReadExt, Replay, ReplayOne, Retry, Root, Snapshot, SnapshotStore, Subscribe,
    Truncate, Version, Versioned, Write,
};
use esrc_memory::MemoryStore;
use futures::{Future, Stream};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A third-party store: the memory store, counting the calls of each operation.
#[derive(Clone, Default)]
struct Counting {
    inner: MemoryStore,
    calls: Arc<Mutex<BTreeMap<&'static str, u32>>>,
}

impl Counting {
    fn count(&self, operation: &'static str) {
        *self.calls.lock().unwrap().entry(operation).or_default() += 1;
    }

    fn calls(&self, operation: &str) -> u32 {
        self.calls
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

impl Publish for Counting {
    fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, Error>> + Send {
        self.count("publish");
        self.inner.publish(category, id, expected, events)
    }
}

impl ReplayOne for Counting {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.count("replay_one");
        self.inner.replay_one(category, id, after)
    }
}

impl Replay for Counting {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.count("replay");
        self.inner.replay(categories, after)
    }

    fn head(&self, categories: &[&str]) -> impl Future<Output = Result<Position, Error>> + Send {
        self.count("head");
        self.inner.head(categories)
    }
}

impl Subscribe for Counting {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.count("subscribe");
        self.inner.subscribe(categories, after)
    }
}

impl Truncate for Counting {
    fn truncate(
        &self,
        category: &str,
        id: Uuid,
        before: Version,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.count("truncate");
        self.inner.truncate(category, id, before)
    }
}

impl SnapshotStore for Counting {
    fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.count("save_snapshot");
        self.inner.save_snapshot(category, id, snapshot)
    }

    fn load_snapshot(
        &self,
        category: &str,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send {
        self.count("load_snapshot");
        self.inner.load_snapshot(category, id)
    }
}

impl Decide for Counting {
    fn horizon(&self) -> impl Future<Output = Result<Position, Error>> + Send {
        self.count("horizon");
        self.inner.horizon()
    }

    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.count("query");
        self.inner.query(query, after, until)
    }

    fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> impl Future<Output = Result<Vec<Appended>, Error>> + Send {
        self.count("append_if");
        self.inner.append_if(writes, condition)
    }
}

impl CheckpointStore for Counting {
    fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.count("save_checkpoint");
        self.inner.save_checkpoint(name, position)
    }

    fn load_checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Position>, Error>> + Send {
        self.count("load_checkpoint");
        self.inner.load_checkpoint(name)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
enum LampEvent {
    Switched { on: bool },
}

#[derive(Debug, Default, Serialize, Deserialize, Versioned)]
struct Lamp {
    on: bool,
    switches: u32,
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the lamp is already in that state")]
struct Unchanged;

impl Aggregate for Lamp {
    type Command = bool;
    type Event = LampEvent;
    type Error = Unchanged;

    fn process(&self, on: bool) -> Result<Vec<LampEvent>, Unchanged> {
        if on == self.on {
            return Err(Unchanged);
        }
        Ok(vec![LampEvent::Switched { on }])
    }

    fn apply(self, event: &LampEvent) -> Self {
        match event {
            LampEvent::Switched { on } => Lamp {
                on: *on,
                switches: self.switches + 1,
            },
        }
    }
}

/// Counts the switches it sees.
#[derive(Default)]
struct Switches(u32);

impl Project for Switches {
    type EventGroup<'de> = LampEvent;
    type Error = std::convert::Infallible;

    async fn project<'de>(&mut self, _: Context<'de, LampEvent>) -> Result<(), Self::Error> {
        self.0 += 1;
        Ok(())
    }
}

#[tokio::test]
async fn a_third_party_store_works_behind_any_store_with_every_extension() {
    let counting = Counting::default();
    let store: AnyStore = Arc::new(counting.clone());
    let id = Uuid::now_v7();

    let mut root = Root::<Lamp>::new(id);
    store.try_write(&mut root, true).await.unwrap();
    store.try_write(&mut root, false).await.unwrap();
    let refused = store.try_write(&mut root, false).await;
    assert!(matches!(
        refused,
        Err(esrc_core::CommandError::Rejected(Unchanged))
    ));
    assert_eq!(
        counting.calls("publish"),
        2,
        "the refused command stores nothing"
    );

    let mut root = store.read::<Lamp>(id).await.unwrap();
    assert_eq!(
        (root.on, root.switches, root.version()),
        (false, 2, Version(2))
    );
    store.save_root_snapshot(&root).await.unwrap();
    store.try_write(&mut root, true).await.unwrap();
    store.truncate("Lamp", id, Version(3)).await.unwrap();
    let read = store.read::<Lamp>(id).await.unwrap();
    assert_eq!(
        (read.on, read.switches, read.version()),
        (true, 3, root.version()),
        "the snapshot, then the one event kept after truncation"
    );
    assert_eq!(counting.calls("save_snapshot"), 1);
    assert_eq!(counting.calls("load_snapshot"), 2);
    assert_eq!(counting.calls("truncate"), 1);

    let mut all = Switches::default();
    assert_eq!(store.rebuild(&mut all).await.unwrap(), Position(3));
    assert_eq!(all.0, 1, "only the event left after truncation");
    assert_eq!(counting.calls("replay"), 1);

    let projector = Projector::new(store.clone(), "switches", Switches::default())
        .checkpoint_every(1)
        .spawn();
    tokio::time::timeout(Duration::from_secs(30), async {
        while projector.progress().checkpoint() < Position(3) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the projector catches up");
    assert_eq!(projector.lag().await.unwrap(), 0);
    let switches = projector.stop().await.unwrap();
    assert_eq!(switches.0, 1);
    assert!(
        counting.calls("subscribe") >= 1,
        "the projector follows the store"
    );
    assert_eq!(
        store.load_checkpoint("switches").await.unwrap(),
        Some(Position(3))
    );
    assert!(counting.calls("save_checkpoint") >= 1);
}

#[tokio::test]
async fn any_store_hands_back_the_concrete_store_and_names_it() {
    let store: AnyStore = Arc::new(MemoryStore::new());
    assert!(store.downcast_ref::<MemoryStore>().is_some());
    assert!(store.downcast_ref::<Counting>().is_none());
    assert_eq!(
        format!("{store:?}"),
        "dyn DynStore(esrc_memory::core::MemoryStore)"
    );
}

/// Errors pass through unchanged: a conflict is still a conflict.
#[tokio::test]
async fn errors_pass_through_the_dynamic_form() {
    let store: AnyStore = Arc::new(MemoryStore::new());
    let id = Uuid::now_v7();
    let open = || async {
        let switched = [LampEvent::Switched { on: true }];
        store
            .publish_events(id, Expected::NoStream, &switched, &Default::default())
            .await
    };
    open().await.unwrap();
    let error = open().await.unwrap_err();
    assert!(error.is_conflict(), "{error}");
}

/// The lamp's switches, as a decision state: read by query, through the dynamic form.
struct LampState {
    id: Uuid,
    on: bool,
}

impl Decision for LampState {
    fn query(&self) -> Query {
        Query::new().or(Item::new().in_stream("Lamp", self.id))
    }

    fn apply(&mut self, event: &Envelope) -> Result<(), Error> {
        let LampEvent::Switched { on } = event.deserialize()?;
        self.on = on;
        Ok(())
    }
}

#[tokio::test]
async fn decisions_go_through_the_dynamic_form() {
    let counting = Counting::default();
    let store: AnyStore = Arc::new(counting.clone());
    let id = Uuid::now_v7();
    let switch = |state: &LampState| {
        Write::event(id, &LampEvent::Switched { on: !state.on }).map(|write| vec![write])
    };
    let initial = || LampState { id, on: false };
    store
        .decide(initial, switch, &Retry::default())
        .await
        .unwrap();
    store
        .decide(initial, switch, &Retry::default())
        .await
        .unwrap();
    let (state, until) = store.fold(initial()).await.unwrap();
    assert!(!state.on, "switched on, then off");
    assert_eq!(until, Position(2));
    assert_eq!(counting.calls("append_if"), 2);
    assert_eq!(counting.calls("query"), 3);
    assert_eq!(counting.calls("horizon"), 3);
}
