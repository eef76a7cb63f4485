//! The extension traits and projections, on the memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use esrc_core::testing::given;
use esrc_core::{
    Aggregate, CommandError, Context, DecodeGroup, Envelope, Error, Event, EventGroup, Expected,
    Metadata, Position, Project, ProjectError, ProjectExt, PublishExt, ReadExt, ReplayOne, Root,
    Truncate, Version, Versioned,
};
use esrc_memory::MemoryStore;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, esrc_core::Event)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum AccountError {
    #[error("the account is not open")]
    NotOpen,
    #[error("the account is already open")]
    AlreadyOpen,
}

#[derive(Clone, Debug)]
enum AccountCommand {
    Open(String),
    Deposit(u64),
    /// Opens and deposits at once: two events from one command.
    OpenWith(String, u64),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    open: bool,
    balance: u64,
}

impl Versioned for Account {}

impl Aggregate for Account {
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn process(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open(_) | AccountCommand::OpenWith(..) if self.open => {
                Err(AccountError::AlreadyOpen)
            }
            AccountCommand::Open(owner) => Ok(vec![AccountEvent::Opened { owner }]),
            AccountCommand::OpenWith(owner, amount) => Ok(vec![
                AccountEvent::Opened { owner },
                AccountEvent::Deposited { amount },
            ]),
            AccountCommand::Deposit(_) if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit(0) => Ok(vec![]),
            AccountCommand::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
        }
    }

    fn apply(self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Opened { .. } => Account { open: true, ..self },
            AccountEvent::Deposited { amount } => Account {
                balance: self.balance + amount,
                ..self
            },
        }
    }
}

#[test]
fn derive_names_the_category_after_the_type() {
    assert_eq!(AccountEvent::NAME, "Account");
    assert_eq!(<AccountEvent as Versioned>::VERSION, 1);
    assert_eq!(<AccountEvent as EventGroup>::NAMES, ["Account"]);
}

#[derive(Serialize, Deserialize, esrc_core::Event)]
#[esrc(name = "ledger-entry", version = 3)]
struct Entry {
    amount: i64,
}

#[test]
fn derive_takes_name_and_version_attributes() {
    assert_eq!(Entry::NAME, "ledger-entry");
    assert_eq!(<Entry as Versioned>::VERSION, 3);
}

#[tokio::test]
async fn try_write_updates_the_root_and_a_refusal_leaves_it_as_it_was() {
    let store = MemoryStore::new();
    let id = Uuid::now_v7();
    let mut root = Root::<Account>::new(id);
    store
        .try_write(&mut root, AccountCommand::OpenWith("ann".into(), 5))
        .await
        .unwrap();
    assert_eq!((root.version(), root.balance), (Version(2), 5));

    store
        .try_write(&mut root, AccountCommand::Deposit(0))
        .await
        .unwrap();
    assert_eq!(root.version(), Version(2), "no events, no append");

    match store
        .try_write(&mut root, AccountCommand::Open("bob".into()))
        .await
    {
        Err(CommandError::Rejected(AccountError::AlreadyOpen)) => {}
        other => panic!("expected the domain error, got {other:?}"),
    }
    assert_eq!(
        (root.version(), root.balance),
        (Version(2), 5),
        "the caller keeps its aggregate after a refusal"
    );
    store
        .try_write(&mut root, AccountCommand::Deposit(1))
        .await
        .unwrap();
    let loaded: Root<Account> = store.load(id).await.unwrap();
    assert_eq!((loaded.version(), loaded.balance), (Version(3), 6));
}

#[tokio::test]
async fn a_stale_root_conflicts_and_the_retry_helper_rereads_only_newer_events() {
    let store = MemoryStore::new();
    let id = Uuid::now_v7();
    let mut root = Root::<Account>::new(id);
    store
        .try_write(&mut root, AccountCommand::Open("ann".into()))
        .await
        .unwrap();
    let mut stale = root.clone_state();
    store
        .try_write(&mut root, AccountCommand::Deposit(10))
        .await
        .unwrap();

    match store
        .try_write(&mut stale.clone_state(), AccountCommand::Deposit(1))
        .await
    {
        Err(CommandError::Store(Error::Conflict {
            expected, actual, ..
        })) => {
            assert_eq!((expected.version(), actual), (Some(Version(1)), Version(2)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    store
        .try_write_retry(
            &mut stale,
            Deposit(1),
            &Metadata::new().with("by", "test"),
            &esrc_core::Retry::attempts(3),
        )
        .await
        .unwrap();
    assert_eq!((stale.version(), stale.balance), (Version(3), 11));
}

use AccountCommand::Deposit;

trait CloneState {
    fn clone_state(&self) -> Self;
}

impl CloneState for Root<Account> {
    fn clone_state(&self) -> Self {
        let state = Account {
            open: self.open,
            balance: self.balance,
        };
        Root::from_parts(self.id(), self.version(), self.position(), state)
    }
}

#[tokio::test]
async fn read_refuses_a_history_truncated_past_its_snapshot() {
    let store = MemoryStore::new();
    let id = Uuid::now_v7();
    let mut root = Root::<Account>::new(id);
    store
        .try_write(&mut root, AccountCommand::Open("ann".into()))
        .await
        .unwrap();
    for _ in 0..3 {
        store.try_write(&mut root, Deposit(1)).await.unwrap();
    }
    store.truncate("Account", id, Version(3)).await.unwrap();
    match store.read::<Account>(id).await {
        Err(Error::MissingHistory {
            expected, found, ..
        }) => assert_eq!((expected, found), (Version(1), Version(3))),
        other => panic!(
            "expected MissingHistory, got {:?}",
            other.map(|r| r.version())
        ),
    }
    store.save_root_snapshot(&root).await.unwrap();
    let read: Root<Account> = store.read(id).await.unwrap();
    assert_eq!((read.version(), read.balance), (Version(4), 3));
}

/// Borrowed events: the projection reads `&str` straight from the stored payload.
#[derive(Debug, Serialize, Deserialize)]
enum Borrowed<'a> {
    Opened { owner: &'a str },
    Deposited { amount: u64 },
}

impl Versioned for Borrowed<'_> {}
impl Event for Borrowed<'_> {
    const NAME: &'static str = "Account";
}

/// A group of two categories, written by hand.
enum Feed<'a> {
    Account(Borrowed<'a>),
    Entry(Entry),
}

impl EventGroup for Feed<'_> {
    const NAMES: &'static [&'static str] = &["Account", "ledger-entry"];
}

impl<'de> DecodeGroup<'de> for Feed<'de> {
    fn decode_group(envelope: &'de Envelope) -> Result<Self, Error> {
        match envelope.category.as_str() {
            "Account" => Ok(Feed::Account(envelope.deserialize()?)),
            "ledger-entry" => Ok(Feed::Entry(envelope.deserialize()?)),
            other => Err(Error::unknown_event(other.to_owned(), Self::NAMES)),
        }
    }
}

#[derive(Default)]
struct Owners {
    seen: Arc<Mutex<Vec<String>>>,
    total: i64,
    fail_at: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

impl Project for Owners {
    type EventGroup<'de> = Feed<'de>;
    type Error = Refused;

    async fn project<'de>(&mut self, context: Context<'de, Feed<'de>>) -> Result<(), Refused> {
        if Some(context.position().get()) == self.fail_at {
            return Err(Refused);
        }
        match context.event() {
            Feed::Account(Borrowed::Opened { owner }) => {
                // `owner` points into the envelope's payload: no copy was made to decode it.
                let payload = context.envelope().payload.as_ptr_range();
                assert!(payload.contains(&owner.as_ptr()));
                self.seen.lock().unwrap().push((*owner).to_owned());
            }
            Feed::Account(Borrowed::Deposited { amount }) => self.total += *amount as i64,
            Feed::Entry(entry) => self.total += entry.amount,
        }
        Ok(())
    }
}

#[tokio::test]
async fn rebuild_and_observe_feed_a_zero_copy_projection() {
    let store = MemoryStore::new();
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    store
        .try_write(
            &mut Root::<Account>::new(ann),
            AccountCommand::OpenWith("ann".into(), 5),
        )
        .await
        .unwrap();
    store
        .publish_events(
            Uuid::now_v7(),
            Expected::Any,
            &[Entry { amount: -2 }],
            &Metadata::new(),
        )
        .await
        .unwrap();

    let mut owners = Owners::default();
    let last = store.rebuild(&mut owners).await.unwrap();
    assert_eq!(last, Position(3));
    assert_eq!(
        (owners.seen.lock().unwrap().clone(), owners.total),
        (vec!["ann".to_owned()], 3)
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    let live = {
        let store = store.clone();
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut owners = Owners {
                seen,
                ..Owners::default()
            };
            store.observe(&mut owners, last).await
        })
    };
    store
        .try_write(
            &mut Root::<Account>::new(bob),
            AccountCommand::Open("bob".into()),
        )
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while seen.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("observe delivers live events");
    assert_eq!(*seen.lock().unwrap(), ["bob"]);
    live.abort();

    let mut failing = Owners {
        fail_at: Some(2),
        ..Owners::default()
    };
    match store.rebuild(&mut failing).await {
        Err(ProjectError::Project { position, .. }) => assert_eq!(position, Position(2)),
        other => panic!(
            "expected the projection's error, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn given_when_then() {
    given::<Account>([])
        .when(Deposit(3))
        .then_error(AccountError::NotOpen);
    given::<Account>([AccountEvent::Opened {
        owner: "ann".into(),
    }])
    .when(Deposit(3))
    .then([AccountEvent::Deposited { amount: 3 }]);
    given::<Account>([AccountEvent::Opened {
        owner: "ann".into(),
    }])
    .when(AccountCommand::Open("ann".into()))
    .then_error_matches(|e| matches!(e, AccountError::AlreadyOpen));
}

/// One history serves several commands; the id and the state are there to look at, and
/// the root goes on to a store.
#[tokio::test]
async fn a_history_branches_and_hands_over_its_root() {
    use esrc_core::testing::given_for;
    let id = Uuid::now_v7();
    let opened = given_for::<Account>(
        id,
        [
            AccountEvent::Opened {
                owner: "ann".into(),
            },
            AccountEvent::Deposited { amount: 2 },
        ],
    );
    opened
        .when(Deposit(3))
        .then([AccountEvent::Deposited { amount: 3 }]);
    opened.when(Deposit(0)).then([]);
    opened
        .when(AccountCommand::Open("bob".into()))
        .then_error(AccountError::AlreadyOpen);
    assert_eq!(opened.id(), id);
    assert_eq!(opened.aggregate().balance, 2);

    let store = MemoryStore::new();
    let mut root = opened.into_root();
    assert_eq!(root.version(), Version(2));
    // The store has none of the given events: the root's expectation says so.
    let refused = store.try_write(&mut root, Deposit(1)).await;
    assert!(matches!(
        refused,
        Err(CommandError::Store(Error::Conflict { .. }))
    ));
}

#[test]
#[should_panic(expected = "- #0 Deposited { amount: 4 }\n  + #0 Deposited { amount: 3 }")]
fn given_when_then_shows_a_diff() {
    given::<Account>([AccountEvent::Opened {
        owner: "ann".into(),
    }])
    .when(Deposit(3))
    .then([AccountEvent::Deposited { amount: 4 }]);
}

#[test]
#[should_panic(expected = "expected events, but the command was rejected")]
fn given_when_then_reports_an_unexpected_rejection() {
    given::<Account>([])
        .when(Deposit(3))
        .then([AccountEvent::Deposited { amount: 3 }]);
}

/// Stores work through `&S`, `Arc<S>` and `Box<S>`, and as trait bounds in generic code.
#[tokio::test]
async fn references_arcs_and_boxes_are_stores() {
    async fn open<S: esrc_core::Store>(store: S, id: Uuid) -> Root<Account> {
        let mut root = Root::new(id);
        store
            .try_write(&mut root, AccountCommand::Open("x".into()))
            .await
            .unwrap();
        root
    }
    let store = MemoryStore::new();
    let ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    open(&store, ids[0]).await;
    open(Arc::new(store.clone()), ids[1]).await;
    open(Box::new(store.clone()), ids[2]).await;
    for id in ids {
        let root: Root<Account> = store.load(id).await.unwrap();
        assert_eq!(root.version(), Version(1));
    }
}

/// Opens an account `id` for `owner`.
async fn open_account(store: &MemoryStore, id: Uuid, owner: &str) {
    store
        .try_write(
            &mut Root::<Account>::new(id),
            AccountCommand::Open(owner.into()),
        )
        .await
        .unwrap();
}

/// The projector's lag is the head of its categories minus its checkpoint.
#[tokio::test]
async fn projector_lag_is_head_minus_checkpoint() {
    use esrc_core::projector::Projector;
    let store = MemoryStore::new();
    for _ in 0..10 {
        open_account(&store, Uuid::now_v7(), "x").await;
    }
    let slow = Projector::new(store.clone(), "slow", Owners::default())
        .checkpoint_every(1_000)
        .checkpoint_interval(std::time::Duration::from_secs(3600))
        .spawn();
    let quick = Projector::new(store.clone(), "quick", Owners::default())
        .checkpoint_every(1)
        .spawn();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while slow.progress().projected() < Position(10)
            || quick.progress().checkpoint() < Position(10)
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(slow.lag().await.unwrap(), 10, "nothing checkpointed yet");
    assert_eq!(quick.lag().await.unwrap(), 0);
    slow.stop().await.unwrap();
    quick.stop().await.unwrap();
    use esrc_core::CheckpointStore;
    assert_eq!(
        store.load_checkpoint("slow").await.unwrap(),
        Some(Position(10)),
        "stop saves"
    );
}

/// A store whose first append is stored but answered with a retryable error, as when a
/// connection drops before the acknowledgement arrives.
#[derive(Clone)]
struct LostAck {
    inner: MemoryStore,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl esrc_core::Publish for LostAck {
    async fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: esrc_core::Expected,
        events: Vec<esrc_core::NewEvent>,
    ) -> Result<esrc_core::Appended, Error> {
        let appended = self.inner.publish(category, id, expected, events).await?;
        if !self.lost.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Err(Error::backend(
                "lossy",
                true,
                "connection lost before the ack",
            ));
        }
        Ok(appended)
    }
}

impl esrc_core::ReplayOne for LostAck {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl futures::Stream<Item = Result<esrc_core::Envelope, Error>> + Send + use<'_> {
        esrc_core::ReplayOne::replay_one(&self.inner, category, id, after)
    }
}

#[tokio::test]
async fn try_write_retry_sends_the_same_events_again_after_a_retryable_error() {
    let store = LostAck {
        inner: MemoryStore::new(),
        lost: Arc::default(),
    };
    let id = Uuid::now_v7();
    let mut root = Root::<Account>::new(id);
    store
        .try_write_retry(
            &mut root,
            AccountCommand::Open("ann".into()),
            &Metadata::default(),
            &esrc_core::Retry::attempts(3),
        )
        .await
        .expect("the retry reports the stored append");
    assert_eq!(root.version(), Version(1));
    let stored: Vec<_> =
        esrc_core::ReplayOne::replay_one(&store.inner, "Account", id, Version::ZERO)
            .collect()
            .await;
    assert_eq!(stored.len(), 1, "stored once: {stored:?}");
}

/// `rebuild_after` feeds only the events after the given position.
#[tokio::test]
async fn rebuild_after_projects_only_later_events() -> esrc_core::error::Result<()> {
    let store = MemoryStore::new();
    for owner in ["ann", "bob", "cid"] {
        open_account(&store, Uuid::now_v7(), owner).await;
    }
    let mut owners = Owners::default();
    let last = store.rebuild_after(&mut owners, Position(1)).await.unwrap();
    assert_eq!(last, Position(3));
    assert_eq!(*owners.seen.lock().unwrap(), ["bob", "cid"]);

    let mut none = Owners::default();
    let last = store.rebuild_after(&mut none, Position(3)).await.unwrap();
    assert_eq!(
        last,
        Position(3),
        "nothing newer: the position given comes back"
    );
    assert!(none.seen.lock().unwrap().is_empty());
    Ok(())
}

/// A root refuses an event of another stream: another id, or the same id in another
/// category.
#[tokio::test]
async fn a_root_refuses_an_event_of_another_stream() {
    let store = MemoryStore::new();
    let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
    for id in [ann, bob] {
        open_account(&store, id, "x").await;
    }
    let bobs = std::pin::pin!(store.replay_one("Account", bob, Version::ZERO))
        .next()
        .await
        .unwrap()
        .unwrap();
    let error = Root::<Account>::new(ann).apply_envelope(&bobs).unwrap_err();
    assert!(
        matches!(&error, Error::WrongStream { category: "Account", id, found_category, found_id, .. }
            if *id == ann && found_category == "Account" && *found_id == bob),
        "{error:?}"
    );
    let mut other_category = bobs.clone();
    other_category.category = "Entry".into();
    let error = Root::<Account>::new(bob)
        .apply_envelope(&other_category)
        .unwrap_err();
    assert!(matches!(error, Error::WrongStream { .. }), "{error:?}");
    // Its own event applies.
    let root = Root::<Account>::new(bob).apply_envelope(&bobs).unwrap();
    assert!(root.open);
}

/// `caught_up` waits until everything stored when it was called is projected, and says
/// so; a projector that fails first makes it answer with the projector's error (not a
/// `false` a caller would wait on again).
#[tokio::test]
async fn caught_up_waits_for_the_head_or_reports_an_ended_projector() {
    use esrc_core::projector::{ErrorPolicy, Projector};
    let store = MemoryStore::new();
    for _ in 0..20 {
        open_account(&store, Uuid::now_v7(), "x").await;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let owners = Owners {
        seen: Arc::clone(&seen),
        ..Owners::default()
    };
    let running = Projector::new(store.clone(), "owners", owners).spawn();
    assert!(running.caught_up().await.unwrap());
    assert_eq!(
        seen.lock().unwrap().len(),
        20,
        "every event stored before the call"
    );
    running.stop().await.unwrap();

    let failing = Owners {
        fail_at: Some(5),
        ..Owners::default()
    };
    let running = Projector::new(store.clone(), "failing", failing)
        .on_error(ErrorPolicy::Stop)
        .spawn();
    match running.caught_up().await {
        Err(esrc_core::Error::ProjectorFailed {
            projector, reason, ..
        }) => {
            assert_eq!(projector, "failing");
            assert!(reason.contains("position 5"), "{reason}");
        }
        other => panic!("the projector failed at position 5, got {other:?}"),
    }
    assert!(running.join().await.is_err());
}

/// A read model kept in memory is empty at every start: started again after its
/// checkpoint was saved, a projector resumes after it and the model misses what came
/// before, unless it starts from the first event.
#[tokio::test]
async fn from_start_rebuilds_an_in_memory_model_whatever_the_checkpoint() {
    use esrc_core::projector::Projector;
    let store = MemoryStore::new();
    for owner in ["a", "b", "c"] {
        open_account(&store, Uuid::now_v7(), owner).await;
    }
    let first = Projector::new(store.clone(), "owners", Owners::default())
        .checkpoint_every(1)
        .spawn();
    assert!(first.caught_up().await.unwrap());
    assert_eq!(first.stop().await.unwrap().seen.lock().unwrap().len(), 3);
    open_account(&store, Uuid::now_v7(), "d").await;

    let resumed = Projector::new(store.clone(), "owners", Owners::default()).spawn();
    assert!(resumed.caught_up().await.unwrap());
    let missed = resumed.stop().await.unwrap();
    assert_eq!(
        *missed.seen.lock().unwrap(),
        ["d"],
        "resumed after the checkpoint"
    );

    let rebuilt = Projector::new(store.clone(), "owners", Owners::default())
        .from_start(true)
        .spawn();
    assert!(rebuilt.caught_up().await.unwrap());
    let rebuilt = rebuilt.stop().await.unwrap();
    assert_eq!(*rebuilt.seen.lock().unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(
        esrc_core::CheckpointStore::load_checkpoint(&store, "owners")
            .await
            .unwrap(),
        Some(esrc_core::Replay::head(&store, &["Account"]).await.unwrap()),
        "checkpoints are still saved"
    );
}

/// Dropping a projector's handle stops the projector; a detached one goes on projecting
/// events stored afterwards.
#[tokio::test]
async fn a_dropped_handle_stops_its_projector_and_a_detached_one_runs_on() {
    use esrc_core::projector::Projector;
    let store = MemoryStore::new();
    open_account(&store, Uuid::now_v7(), "a").await;

    let dropped = Owners::default();
    let dropped_seen = Arc::clone(&dropped.seen);
    let handle = Projector::new(store.clone(), "dropped", dropped).spawn();
    assert!(handle.caught_up().await.unwrap());
    drop(handle);

    let detached = Owners::default();
    let detached_seen = Arc::clone(&detached.seen);
    let handle = Projector::new(store.clone(), "detached", detached).spawn();
    assert!(handle.caught_up().await.unwrap());
    handle.detach();

    open_account(&store, Uuid::now_v7(), "b").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while detached_seen.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the detached projector stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(*detached_seen.lock().unwrap(), ["a", "b"]);
    // Time for a projector that was still running to see `b` too.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        *dropped_seen.lock().unwrap(),
        ["a"],
        "the dropped one stopped before `b`"
    );
}
