//! Conveniences every store gets for free: typed appends, aggregate reads, command
//! handling and projection runs.

use std::future::Future;
use std::pin::pin;

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::metrics::Retried;
use crate::project::{ProjectError, project_one};

use crate::{
    Aggregate, Appended, Error, Event, EventGroup, Expected, Metadata, NewEvent, Position, Project,
    Publish, Replay, ReplayOne, Root, Snapshot, SnapshotOrEvent, SnapshotStore, Subscribe, Version,
    Versioned,
};

/// Why a command did not produce an updated root.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The aggregate refused the command with its own error; nothing was stored.
    #[error("command rejected")]
    Rejected(#[source] E),
    /// The store failed, or another writer changed the stream first ([`Error::Conflict`]).
    #[error(transparent)]
    Store(#[from] Error),
}

impl<E> CommandError<E> {
    /// The aggregate's error, if the command was refused by the aggregate.
    pub fn rejected(self) -> Option<E> {
        match self {
            CommandError::Rejected(error) => Some(error),
            CommandError::Store(_) => None,
        }
    }
}

/// The events encoded, with `metadata` and the current span's trace context
/// ([`crate::trace`]).
fn encode_all<E: Event>(events: &[E], metadata: &Metadata) -> Result<Vec<NewEvent>, Error> {
    let mut metadata = metadata.clone();
    crate::trace::stamp(&mut metadata);
    events
        .iter()
        .map(|event| Ok(NewEvent::unstamped(event)?.with_metadata(metadata.clone())))
        .collect()
}

/// The namespace of the event ids derived from idempotency keys (a UUIDv5 namespace of
/// esrc's own).
const KEYED_IDS: Uuid = Uuid::from_u128(0x6573_7263_2d6b_6579_6564_2d69_6473_0001);

/// The id of the `index`-th event a command keyed `key` produces for the stream `id`:
/// the same command, retried with the same key on the same stream, gets the same ids.
fn keyed_event_id(key: &str, id: Uuid, index: usize) -> Uuid {
    Uuid::new_v5(&KEYED_IDS, format!("{id}/{index}/{key}").as_bytes())
}

/// Processes `command` on `root`, appends the events (their ids derived from `key` when
/// there is one) expecting the stream at the root's version, and applies them to `root`:
/// what `try_write_with` and `try_write_keyed` do.
async fn process_and_append<S, A>(
    store: &S,
    root: &mut Root<A>,
    command: A::Command,
    metadata: &Metadata,
    key: Option<&str>,
) -> Result<(), CommandError<A::Error>>
where
    S: Publish + ?Sized,
    A: Aggregate,
{
    let events = root.process(command).map_err(CommandError::Rejected)?;
    if events.is_empty() {
        return Ok(());
    }
    let id = root.id();
    let mut batch = encode_all(&events, metadata)?;
    if let Some(key) = key {
        for (index, event) in batch.iter_mut().enumerate() {
            event.event_id = keyed_event_id(key, id, index);
        }
    }
    let appended = store
        .publish(A::Event::NAME, id, root.expected(), batch)
        .await?;
    apply_appended(root, &events, appended);
    Ok(())
}

/// Applies events just appended with `appended` to `root`.
fn apply_appended<A: Aggregate>(root: &mut Root<A>, events: &[A::Event], appended: Appended) {
    let first = root.version().get() + 1;
    for (event, version) in events.iter().zip(first..) {
        root.apply_event(event, Version(version), appended.position);
    }
    debug_assert_eq!(root.version(), appended.version);
}

/// Typed appends and command handling, for every [`Publish`] store.
pub trait PublishExt: Publish {
    /// Encodes and appends `events` to the stream `(E::NAME, id)` in one atomic call.
    fn publish_events<E: Event + Sync>(
        &self,
        id: Uuid,
        expected: Expected,
        events: &[E],
        metadata: &Metadata,
    ) -> impl Future<Output = Result<Appended, Error>> + Send {
        async move {
            let batch = encode_all(events, metadata)?;
            self.publish(E::NAME, id, expected, batch).await
        }
    }

    /// Appends `events` after `root` (expecting the stream at the root's version) and
    /// applies them to `root`. No events: `root` stays as it was, and the store is not
    /// called. On an error `root` is as it was (the same rule as
    /// [`PublishExt::try_write`]).
    fn write<A: Aggregate>(
        &self,
        root: &mut Root<A>,
        events: Vec<A::Event>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move { self.write_with(root, events, &Metadata::default()).await }
    }

    /// [`PublishExt::write`] with metadata on every event.
    fn write_with<A: Aggregate>(
        &self,
        root: &mut Root<A>,
        events: Vec<A::Event>,
        metadata: &Metadata,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            if events.is_empty() {
                return Ok(());
            }
            let appended = self
                .publish_events(root.id(), root.expected(), &events, metadata)
                .await?;
            apply_appended(root, &events, appended);
            Ok(())
        }
    }

    /// Processes `command` on `root` and appends the resulting events, expecting the stream
    /// at the root's version; on success `root` has them applied. The aggregate's refusal
    /// comes back as [`CommandError::Rejected`] with the aggregate's own error type, and
    /// `root` is left as it was, so the caller keeps its aggregate.
    fn try_write<A: Aggregate>(
        &self,
        root: &mut Root<A>,
        command: A::Command,
    ) -> impl Future<Output = Result<(), CommandError<A::Error>>> + Send {
        async move {
            self.try_write_with(root, command, &Metadata::default())
                .await
        }
    }

    /// [`PublishExt::try_write`] with metadata on every event.
    fn try_write_with<A: Aggregate>(
        &self,
        root: &mut Root<A>,
        command: A::Command,
        metadata: &Metadata,
    ) -> impl Future<Output = Result<(), CommandError<A::Error>>> + Send {
        process_and_append(self, root, command, metadata, None)
    }

    /// [`PublishExt::try_write_with`] for a command that may be sent again after its
    /// outcome was lost: a web handler's future dropped when the client went away, a
    /// `timeout`, a crash between the append and the answer. The events' ids are derived
    /// from `key` (an idempotency key the caller gives the command: a request id), the
    /// stream and each event's place, so the same command sent again from the same root
    /// gets the same ids, and the store recognises the retry: it stores nothing twice and
    /// reports the original outcome, and `root` ends as if the first try had answered.
    ///
    /// The command must decide the same from the same root (`process` is a function of
    /// the state and the command). A root brought up to date in between may decide
    /// otherwise, and is not a retry. Keys are per stream: the same key on two streams
    /// names two commands.
    ///
    /// ```
    /// # use esrc_core::{Aggregate, Metadata, PublishExt, ReadExt, Root, Uuid};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Serialize, Deserialize, esrc_core::Event)] enum TabEvent { Opened }
    /// # #[derive(Default)] struct Tab;
    /// # impl Aggregate for Tab {
    /// #     type Command = (); type Event = TabEvent; type Error = std::convert::Infallible;
    /// #     fn process(&self, _: ()) -> Result<Vec<TabEvent>, Self::Error> { Ok(vec![TabEvent::Opened]) }
    /// #     fn apply(self, _: &TabEvent) -> Self { self }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = esrc_memory::MemoryStore::new();
    /// let root = Root::<Tab>::new(Uuid::now_v7());
    /// let none = Metadata::default();
    /// // The first try is stored, but its answer is lost: the caller still has `root`.
    /// let mut lost = Root::<Tab>::new(root.id());
    /// store.try_write_keyed(&mut lost, (), "request-7f3a", &none).await?;
    /// // Sent again with the same key: recognised, stored once.
    /// let mut again = Root::<Tab>::new(root.id());
    /// store.try_write_keyed(&mut again, (), "request-7f3a", &none).await?;
    /// assert_eq!(again.version().get(), 1);
    /// assert_eq!(store.load::<Tab>(root.id()).await?.version().get(), 1);
    /// # Ok(()) }
    /// ```
    fn try_write_keyed<A: Aggregate>(
        &self,
        root: &mut Root<A>,
        command: A::Command,
        key: &str,
        metadata: &Metadata,
    ) -> impl Future<Output = Result<(), CommandError<A::Error>>> + Send {
        process_and_append(self, root, command, metadata, Some(key))
    }

    /// Like [`PublishExt::try_write_with`], but it tries again as `retry` says (up to
    /// [`Retry::attempts`] tries in all):
    /// - on [`Error::Conflict`] it applies to `root` the events written meanwhile (only
    ///   those newer than the root) and processes the command again;
    /// - on a retryable store error (a timeout, a lost connection, an election) it sends
    ///   the *same* events again, with the same event ids, after a pause (by default 50
    ///   ms, doubling up to 2 s): if the failed try was stored after all, the store
    ///   recognises the retry and reports the original outcome, so nothing is stored
    ///   twice.
    ///
    /// Whatever happens, `root` stays a consistent root of the stream: as it was, or
    /// brought up to date.
    fn try_write_retry<A>(
        &self,
        root: &mut Root<A>,
        command: A::Command,
        metadata: &Metadata,
        retry: &Retry,
    ) -> impl Future<Output = Result<(), CommandError<A::Error>>> + Send
    where
        Self: ReplayOne,
        A: Aggregate,
        A::Command: Clone + Sync,
    {
        async move {
            let attempts = retry.attempts;
            let mut attempt = 1;
            let mut pauses = crate::backoff::Backoff::new(retry.first_pause, retry.max_pause);
            'command: loop {
                let events = root
                    .process(command.clone())
                    .map_err(CommandError::Rejected)?;
                if events.is_empty() {
                    return Ok(());
                }
                let batch = encode_all(&events, metadata)?;
                loop {
                    let expected = root.expected();
                    match self
                        .publish(A::Event::NAME, root.id(), expected, batch.clone())
                        .await
                    {
                        Ok(appended) => {
                            apply_appended(root, &events, appended);
                            return Ok(());
                        }
                        Err(error) if error.is_conflict() && attempt < attempts => {
                            tracing::debug!(error = %crate::Chain(&error), attempt, "conflict, re-reading the stream");
                            attempt += 1;
                            crate::metrics::retried("write", Retried::Conflict);
                            self.refresh(root).await?;
                            continue 'command;
                        }
                        Err(error) if error.is_retryable() && attempt < attempts => {
                            let pause = pauses.pause();
                            tracing::debug!(error = %crate::Chain(&error), attempt, ?pause, "store unavailable, sending the same events again");
                            attempt += 1;
                            crate::metrics::retried("write", Retried::Unavailable);
                            tokio::time::sleep(pause).await;
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            }
        }
    }
}

impl<S: Publish + ?Sized> PublishExt for S {}

/// How [`PublishExt::try_write_retry`] tries again: how many tries in all, and the pauses
/// before sending the same events again after a transient failure (doubling from the
/// first to the longest). A conflict is tried again at once, after re-reading.
///
/// ```
/// use std::time::Duration;
/// let retry = esrc_core::Retry::attempts(5).pauses(Duration::from_millis(10), Duration::from_secs(1));
/// assert_eq!(retry.attempts, 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retry {
    /// Tries in all, the first included (at least 1).
    pub attempts: usize,
    /// The pause after the first transient failure.
    pub first_pause: std::time::Duration,
    /// The longest pause.
    pub max_pause: std::time::Duration,
}

impl Retry {
    /// Up to `attempts` tries in all (at least 1), with the default pauses: 50 ms,
    /// doubling up to 2 s.
    pub fn attempts(attempts: usize) -> Self {
        Self {
            attempts: attempts.max(1),
            ..Self::default()
        }
    }

    /// The pauses before sending the same events again: `first`, doubling up to `max`.
    #[must_use]
    pub fn pauses(mut self, first: std::time::Duration, max: std::time::Duration) -> Self {
        self.first_pause = first;
        self.max_pause = max;
        self
    }
}

/// Three tries, pauses of 50 ms doubling up to 2 s.
impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            first_pause: std::time::Duration::from_millis(50),
            max_pause: std::time::Duration::from_secs(2),
        }
    }
}

/// Reading aggregates, for every [`ReplayOne`] store.
pub trait ReadExt: ReplayOne {
    /// Rebuilds the aggregate `id` from all its events (no snapshot).
    fn load<A: Aggregate>(&self, id: Uuid) -> impl Future<Output = Result<Root<A>, Error>> + Send {
        async move {
            let mut root = Root::new(id);
            self.refresh(&mut root).await?;
            Ok(root)
        }
    }

    /// Applies to `root` the events stored after its version: the cheap way to bring a
    /// cached root up to date. On an error `root` holds the events applied until then:
    /// still a consistent root of the stream, only not the newest.
    fn refresh<A: Aggregate>(
        &self,
        root: &mut Root<A>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            let mut events = pin!(self.replay_one_from(
                A::Event::NAME,
                root.id(),
                root.version(),
                root.position()
            ));
            while let Some(envelope) = events.next().await {
                root.apply_stored(&envelope?)?;
            }
            Ok(())
        }
    }

    /// Reads the aggregate `id`: its latest snapshot, if any, then the events after it.
    ///
    /// Where the store can answer both at once
    /// ([`SnapshotStore::snapshot_then_events`]: PostgreSQL in one statement, NATS with
    /// its lookups side by side), a read costs one round trip; elsewhere the snapshot is
    /// loaded first and the stream read after its position
    /// ([`ReplayOne::replay_one_from`]).
    fn read<A>(&self, id: Uuid) -> impl Future<Output = Result<Root<A>, Error>> + Send
    where
        Self: SnapshotStore,
        A: Aggregate + Versioned + Serialize + DeserializeOwned,
    {
        async move {
            let category = A::Event::NAME;
            let Some(items) = self.snapshot_then_events(category, id) else {
                let mut root = match self.load_snapshot(category, id).await? {
                    Some(snapshot) => from_snapshot(id, snapshot)?,
                    None => Root::new(id),
                };
                self.refresh(&mut root).await?;
                return Ok(root);
            };
            let mut root = Root::<A>::new(id);
            let rest = {
                let mut items = pin!(items);
                let mut rest = false;
                while let Some(item) = items.next().await {
                    match item? {
                        // A snapshot comes first; one that came later would still hold
                        // the state up to its version, and the events go on from there.
                        SnapshotOrEvent::Snapshot(snapshot)
                            if snapshot.version >= root.version() =>
                        {
                            root = from_snapshot(id, snapshot)?;
                        }
                        SnapshotOrEvent::Snapshot(_) => {}
                        SnapshotOrEvent::Event(envelope) => root.apply_stored(&envelope)?,
                        SnapshotOrEvent::Rest => {
                            rest = true;
                            break;
                        }
                    }
                }
                rest
            };
            // The store's answer stopped short (its request is dropped first): the rest
            // as `load` reads it.
            if rest {
                self.refresh(&mut root).await?;
            }
            Ok(root)
        }
    }

    /// Saves a snapshot of `root`'s state, so that [`ReadExt::read`] starts from it.
    fn save_root_snapshot<A>(
        &self,
        root: &Root<A>,
    ) -> impl Future<Output = Result<(), Error>> + Send
    where
        Self: SnapshotStore,
        A: Aggregate + Versioned + Serialize,
    {
        let category = A::Event::NAME;
        let snapshot = serde_json::to_vec(root.aggregate())
            .map_err(|source| Error::Encode {
                category: category.to_owned(),
                source,
            })
            .map(|payload| Snapshot {
                version: root.version(),
                position: root.position(),
                schema_version: A::VERSION,
                payload: payload.into(),
            });
        let id = root.id();
        async move { self.save_snapshot(category, id, snapshot?).await }
    }
}

/// The root a snapshot holds; a state that does not decode is [`Error::Format`].
fn from_snapshot<A>(id: Uuid, snapshot: Snapshot) -> Result<Root<A>, Error>
where
    A: Aggregate + Versioned + DeserializeOwned,
{
    let state =
        A::decode(snapshot.schema_version, &snapshot.payload).map_err(|source| Error::Format {
            category: A::Event::NAME.to_owned(),
            position: snapshot.position,
            schema_version: snapshot.schema_version,
            source,
        })?;
    Ok(Root::from_parts(
        id,
        snapshot.version,
        snapshot.position,
        state,
    ))
}

impl<S: ReplayOne + ?Sized> ReadExt for S {}

/// Running projections, for every [`Replay`] store ([`ProjectExt::observe`]: and
/// [`Subscribe`]).
pub trait ProjectExt: Replay {
    /// Feeds every stored event of the projection's group to it, from the beginning up to
    /// the head; returns the position of the last event projected (or `ZERO`).
    fn rebuild<P: Project>(
        &self,
        projection: &mut P,
    ) -> impl Future<Output = Result<Position, ProjectError<P::Error>>> + Send {
        self.rebuild_after(projection, Position::ZERO)
    }

    /// Like [`ProjectExt::rebuild`], but only the events after `after` (exclusive): brings a
    /// read model that was built up to `after` up to the head. Returns the position of the
    /// last event projected, or `after` if there was none.
    fn rebuild_after<P: Project>(
        &self,
        projection: &mut P,
        after: Position,
    ) -> impl Future<Output = Result<Position, ProjectError<P::Error>>> + Send {
        async move {
            let names = <P::EventGroup<'static> as EventGroup>::NAMES;
            let mut events = pin!(self.replay(names, after));
            let mut last = after;
            while let Some(envelope) = events.next().await {
                let envelope = envelope?;
                project_one(projection, &envelope).await?;
                last = envelope.position;
            }
            Ok(last)
        }
    }

    /// Feeds the projection every event after `after`, then every new one as it is stored.
    /// Runs until an error; drop the future to stop. For checkpoints, restarts and error
    /// policies, use a projector runner.
    fn observe<P: Project>(
        &self,
        projection: &mut P,
        after: Position,
    ) -> impl Future<Output = Result<(), ProjectError<P::Error>>> + Send
    where
        Self: Subscribe,
    {
        async move {
            let names = <P::EventGroup<'static> as EventGroup>::NAMES;
            let mut events = pin!(self.subscribe(names, after));
            while let Some(envelope) = events.next().await {
                project_one(projection, &envelope?).await?;
            }
            Ok(())
        }
    }
}

impl<S: Replay + ?Sized> ProjectExt for S {}
