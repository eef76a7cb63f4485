//! [`Metered`]: a store that records what goes through it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};

use futures::future::Either;
use futures::{Stream, StreamExt};
use metrics::{Counter, Histogram, counter, histogram};
use uuid::Uuid;

use super::listening;
use crate::{
    Appended, CategoryStats, CheckpointStore, Condition, Decide, Envelope, Error, Expected,
    NewEvent, Position, Publish, Query, Replay, ReplayOne, Snapshot, SnapshotOrEvent,
    SnapshotStore, Subscribe, Truncate, Version, Write,
};

/// A store that records its appends, reads and subscriptions (the table of the
/// [module](crate::metrics)), labelled `store` with the name it was given; every call goes
/// on to the store it wraps. It implements each store trait the wrapped store does, so
/// it is used where the store was.
///
/// ```
/// use esrc_core::metrics::Metered;
/// use esrc_core::{NewEvent, Publish, Expected};
///
/// # #[derive(serde::Serialize, serde::Deserialize, esrc_core::Event)]
/// # enum TabEvent { Opened }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), esrc_core::Error> {
/// let store = Metered::new(esrc_memory::MemoryStore::new(), "memory");
/// let event = NewEvent::new(&TabEvent::Opened)?;
/// store.publish("Tab", uuid::Uuid::now_v7(), Expected::Any, vec![event]).await?;
/// // With a recorder installed, this append is in the count of
/// // esrc_append_duration_seconds{store="memory",category="Tab",outcome="stored"}.
/// assert_eq!(store.name(), "memory");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> Metered<S> {
    /// Wraps `store`, labelling its metrics `store="<name>"` (`memory`, `postgres`,
    /// `nats`, or a name of yours when a program holds several stores).
    pub fn new(store: S, name: impl Into<String>) -> Self {
        Self {
            inner: store,
            meter: Arc::new(Meter::new(name.into())),
        }
    }

    /// The name its metrics are labelled with.
    pub fn name(&self) -> &str {
        &self.meter.store
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The handles of one store, made once per label.
#[derive(Debug)]
struct Meter {
    store: String,
    appends: Handles<Appends>,
    streams: Handles<Reads>,
    groups: Handles<Reads>,
    queries: Handles<Reads>,
    subscriptions: Handles<Counter>,
}

impl Meter {
    fn new(store: String) -> Self {
        Self {
            store,
            appends: Handles::default(),
            streams: Handles::default(),
            groups: Handles::default(),
            queries: Handles::default(),
            subscriptions: Handles::default(),
        }
    }

    fn appends(&self, category: &str) -> Option<Held<'_, Appends>> {
        listening().then(|| {
            self.appends
                .get(category, || Appends::new(&self.store, category))
        })
    }

    fn reads(&self, kind: Read, category: &str) -> Option<Held<'_, Reads>> {
        if !listening() {
            return None;
        }
        let (handles, operation) = match kind {
            Read::Stream => (&self.streams, "stream"),
            Read::Categories => (&self.groups, "categories"),
            Read::Query => (&self.queries, "query"),
        };
        Some(handles.get(category, || Reads::new(&self.store, operation, category)))
    }

    fn subscription(&self, categories: &str) -> Option<Held<'_, Counter>> {
        listening().then(|| {
            self.subscriptions.get(categories, || {
                counter!("esrc_subscription_events_total", "store" => self.store.clone(), "category" => categories.to_owned())
            })
        })
    }
}

/// The kinds of reads, each labelled `operation` by its name in the table.
#[derive(Clone, Copy)]
enum Read {
    Stream,
    Categories,
    Query,
}

/// Handles by label, registered with the recorder the first time a label is seen. The
/// first label a store is used with (a store often serves one category, or a few) is
/// found without a lock or a hash: this is looked up on every append and read.
#[derive(Debug)]
struct Handles<H> {
    first: OnceLock<(String, H)>,
    others: RwLock<HashMap<String, Arc<H>>>,
}

impl<H> Default for Handles<H> {
    fn default() -> Self {
        Self {
            first: OnceLock::new(),
            others: RwLock::new(HashMap::new()),
        }
    }
}

/// Handles found: borrowed from the store's, or shared with them.
enum Held<'a, H> {
    Borrowed(&'a H),
    Shared(Arc<H>),
}

impl<H> std::ops::Deref for Held<'_, H> {
    type Target = H;

    fn deref(&self) -> &H {
        match self {
            Self::Borrowed(handles) => handles,
            Self::Shared(handles) => handles,
        }
    }
}

impl<H> Handles<H> {
    fn get(&self, label: &str, make: impl Fn() -> H) -> Held<'_, H> {
        let (first, handles) = self.first.get_or_init(|| (label.to_owned(), make()));
        if first == label {
            return Held::Borrowed(handles);
        }
        // A poisoned lock still holds whole handles: a panic cannot leave one half-made.
        if let Some(found) = self
            .others
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(label)
        {
            return Held::Shared(Arc::clone(found));
        }
        let mut others = self
            .others
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Held::Shared(Arc::clone(
            others
                .entry(label.to_owned())
                .or_insert_with(|| Arc::new(make())),
        ))
    }
}

#[derive(Debug)]
struct Appends {
    /// The durations of the appends stored, refused by a check, failed otherwise: their
    /// counts are the appends by outcome.
    stored: Histogram,
    conflicts: Histogram,
    errors: Histogram,
    events: Counter,
    bytes: Counter,
}

impl Appends {
    fn new(store: &str, category: &str) -> Self {
        let labels = [
            ("store", store.to_owned()),
            ("category", category.to_owned()),
        ];
        let duration = |outcome: &'static str| {
            let mut labels = labels.to_vec();
            labels.push(("outcome", outcome.to_owned()));
            histogram!("esrc_append_duration_seconds", &labels)
        };
        Self {
            stored: duration("stored"),
            conflicts: duration("conflict"),
            errors: duration("error"),
            events: counter!("esrc_append_events_total", &labels),
            bytes: counter!("esrc_append_bytes_total", &labels),
        }
    }

    /// Times `append` of `count` events of `bytes` bytes, by its outcome.
    async fn record<T>(
        &self,
        (count, bytes): (u64, u64),
        append: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let start = Started::now();
        let outcome = append.await;
        let took = start.seconds();
        match &outcome {
            Ok(_) => {
                self.stored.record(took);
                self.events.increment(count);
                self.bytes.increment(bytes);
            }
            Err(error) if error.is_conflict() => self.conflicts.record(took),
            Err(_) => self.errors.record(took),
        }
        outcome
    }
}

#[derive(Debug)]
struct Reads {
    events: Counter,
    duration: Histogram,
}

impl Reads {
    fn new(store: &str, operation: &'static str, category: &str) -> Self {
        let labels = [
            ("store", store.to_owned()),
            ("operation", operation.to_owned()),
            ("category", category.to_owned()),
        ];
        Self {
            events: counter!("esrc_read_events_total", &labels),
            duration: histogram!("esrc_read_duration_seconds", &labels),
        }
    }
}

/// A read under way: what it yielded, recorded when it is dropped (when a recorder was
/// installed as it began).
struct Tally<'a> {
    reads: (Held<'a, Reads>, Started),
    events: u64,
}

impl Tally<'_> {
    /// One more item; `event` if it counts. (A method, so that the closure owns the whole
    /// tally, and its drop is the read's.)
    fn saw(&mut self, event: bool) {
        self.events += u64::from(event);
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        let (reads, start) = &self.reads;
        if self.events > 0 {
            reads.events.increment(self.events);
        }
        reads.duration.record(start.seconds());
    }
}

/// Counts `read` and the items of it that `is_event`.
fn tally<'a, T, St>(
    read: St,
    reads: Option<Held<'a, Reads>>,
    is_event: fn(&T) -> bool,
) -> impl Stream<Item = Result<T, Error>> + Send + 'a
where
    St: 'a,
    T: 'a,
    St: Stream<Item = Result<T, Error>> + Send,
{
    let Some(reads) = reads else {
        return Either::Right(read);
    };
    let mut tally = Tally {
        reads: (reads, Started::now()),
        events: 0,
    };
    Either::Left(read.map(move |item| {
        tally.saw(item.as_ref().is_ok_and(is_event));
        item
    }))
}

/// When a timed call began, on quanta's clock: the processor's counter where it is
/// reliable (a read costs 11 ns where `Instant::now` costs 31 on the benchmark's machine,
/// and four are read per command: bench/README), else the system's monotonic clock.
#[derive(Clone, Copy)]
struct Started(u64);

impl Started {
    fn now() -> Self {
        Self(clock().raw())
    }

    /// Seconds since.
    #[allow(clippy::cast_precision_loss)] // exact below 2⁵³ ns: 104 days
    fn seconds(self) -> f64 {
        let clock = clock();
        clock.delta_as_nanos(self.0, clock.raw()) as f64 * 1e-9
    }
}

/// The clock of every duration, calibrated against the system's once per process (a few
/// milliseconds, the first time a duration is taken).
fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// How many events, and how many bytes of payload.
fn size(events: &[NewEvent]) -> (u64, u64) {
    let bytes = events.iter().map(|event| event.payload.len() as u64).sum();
    (events.len() as u64, bytes)
}

fn any<T>(_: &T) -> bool {
    true
}

/// The label of a group of categories.
fn group(categories: &[&str]) -> String {
    categories.join(",")
}

impl<S: Publish> Publish for Metered<S> {
    fn publish(
        &self,
        category: &str,
        id: Uuid,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, Error>> + Send {
        match self.meter.appends(category) {
            Some(appends) => {
                let size = size(&events);
                let append = self.inner.publish(category, id, expected, events);
                Either::Left(async move { appends.record(size, append).await })
            }
            None => Either::Right(self.inner.publish(category, id, expected, events)),
        }
    }
}

impl<S: ReplayOne> ReplayOne for Metered<S> {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, S> {
        let reads = self.meter.reads(Read::Stream, category);
        tally(self.inner.replay_one(category, id, after), reads, any)
    }

    fn replay_one_from(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, S> {
        let reads = self.meter.reads(Read::Stream, category);
        tally(
            self.inner.replay_one_from(category, id, after, at),
            reads,
            any,
        )
    }
}

impl<S: Replay> Replay for Metered<S> {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, S> {
        let reads = self.meter.reads(Read::Categories, &group(categories));
        tally(self.inner.replay(categories, after), reads, any)
    }

    fn head(&self, categories: &[&str]) -> impl Future<Output = Result<Position, Error>> + Send {
        self.inner.head(categories)
    }

    fn count_after(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        self.inner.count_after(categories, after)
    }

    fn categories(&self) -> impl Future<Output = Result<Vec<CategoryStats>, Error>> + Send {
        self.inner.categories()
    }
}

impl<S: Subscribe> Subscribe for Metered<S> {
    fn subscribe(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, S> {
        let delivered = self.meter.subscription(&group(categories));
        self.inner.subscribe(categories, after).map(move |item| {
            if let (Some(delivered), Ok(_)) = (&delivered, &item) {
                delivered.increment(1);
            }
            item
        })
    }
}

impl<S: Truncate> Truncate for Metered<S> {
    fn truncate(
        &self,
        category: &str,
        id: Uuid,
        before: Version,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.inner.truncate(category, id, before)
    }
}

impl<S: SnapshotStore> SnapshotStore for Metered<S> {
    fn save_snapshot(
        &self,
        category: &str,
        id: Uuid,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.inner.save_snapshot(category, id, snapshot)
    }

    fn load_snapshot(
        &self,
        category: &str,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send {
        self.inner.load_snapshot(category, id)
    }

    fn snapshot_then_events(
        &self,
        category: &str,
        id: Uuid,
    ) -> Option<impl Stream<Item = Result<SnapshotOrEvent, Error>> + Send + use<'_, S>> {
        let read = self.inner.snapshot_then_events(category, id)?;
        let reads = self.meter.reads(Read::Stream, category);
        Some(tally(read, reads, |item| {
            matches!(item, SnapshotOrEvent::Event(_))
        }))
    }
}

impl<S: Decide> Decide for Metered<S> {
    fn horizon(&self) -> impl Future<Output = Result<Position, Error>> + Send {
        self.inner.horizon()
    }

    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_, S> {
        let reads = self.meter.reads(Read::Query, "*");
        tally(self.inner.query(query, after, until), reads, any)
    }

    fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> impl Future<Output = Result<Vec<Appended>, Error>> + Send {
        match self.meter.appends(crate::trace::target_of(&writes)) {
            Some(appends) => {
                let size = writes
                    .iter()
                    .map(|write| size(&write.events))
                    .fold((0, 0), |(count, bytes), (more, more_bytes)| {
                        (count + more, bytes + more_bytes)
                    });
                let append = self.inner.append_if(writes, condition);
                Either::Left(async move { appends.record(size, append).await })
            }
            None => Either::Right(self.inner.append_if(writes, condition)),
        }
    }
}

impl<S: CheckpointStore> CheckpointStore for Metered<S> {
    fn save_checkpoint(
        &self,
        name: &str,
        position: Position,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.inner.save_checkpoint(name, position)
    }

    fn load_checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Position>, Error>> + Send {
        self.inner.load_checkpoint(name)
    }

    fn checkpoints(&self) -> impl Future<Output = Result<Vec<(String, Position)>, Error>> + Send {
        self.inner.checkpoints()
    }

    fn reset_checkpoint(
        &self,
        name: &str,
        to: Option<Position>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.inner.reset_checkpoint(name, to)
    }
}
