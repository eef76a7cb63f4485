//! `esrc copy`, `esrc export` and `esrc import`, and the writer they share: events in
//! position order in, batches of one stream out, resumable.

use std::io::{BufRead as _, Write as _};
use std::pin::pin;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use esrc::{
    AnyStore, CheckpointStore, Envelope, Error, Expected, NewEvent, Position, Publish, Replay,
    ReplayOne, Uuid, Version,
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::record::Record;
use crate::{DataError, Interrupted};

/// How often the writer saves how far it got.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Appends events, given in the source's position order, to `target`: consecutive
/// events of one stream go in one append, at the versions they had, with their ids.
///
/// Appending is idempotent: a batch stored before (by an interrupted run) is recognised
/// by its event ids and not stored again; when an earlier run cut its batches elsewhere,
/// the events the target holds already are compared id by id and skipped.
pub(crate) struct Writer<'a> {
    target: &'a AnyStore,
    /// The checkpoint that records the source position of the last event stored.
    job: Option<String>,
    max: usize,
    stream: Option<(String, Uuid)>,
    first: Version,
    events: Vec<NewEvent>,
    /// The source position of the last event gathered, and of the last one stored: only
    /// the second may go into the checkpoint.
    last_position: Position,
    stored_position: Position,
    saved_at: Instant,
    /// Events sent (some may be recognised as stored by an earlier run), and events found
    /// in the target already.
    sent: u64,
    present: u64,
    /// How many events the target held before, if it can tell.
    before: Option<u64>,
}

/// How many events `store` holds, if it can list its categories.
async fn events_in(store: &AnyStore) -> Option<u64> {
    let categories = store.categories().await.ok()?;
    Some(categories.iter().map(|category| category.events).sum())
}

impl<'a> Writer<'a> {
    pub(crate) async fn new(target: &'a AnyStore, job: Option<String>, max: usize) -> Self {
        Writer {
            before: events_in(target).await,
            target,
            job,
            max: max.clamp(1, 1_000),
            stream: None,
            first: Version::ZERO,
            events: Vec::new(),
            last_position: Position::ZERO,
            stored_position: Position::ZERO,
            saved_at: Instant::now(),
            sent: 0,
            present: 0,
        }
    }

    /// What the run did, in one sentence.
    pub(crate) async fn report(&self) -> String {
        let after = events_in(self.target).await;
        match after.zip(self.before) {
            Some((after, before)) => {
                let new = after.saturating_sub(before);
                let again = (self.sent + self.present).saturating_sub(new);
                format!(
                    "Stored {new} new events; {again} were stored by an earlier run and kept once."
                )
            }
            None => format!(
                "Sent {} events; the target recognises those an earlier run stored by their ids and keeps them once.",
                self.sent + self.present
            ),
        }
    }

    /// Where an earlier run of the same job stopped, if any.
    pub(crate) async fn resume_after(&self) -> anyhow::Result<Position> {
        Ok(match &self.job {
            Some(job) => self.target.load_checkpoint(job).await?.unwrap_or_default(),
            None => Position::ZERO,
        })
    }

    /// Adds one event; appends the batch before it when the event does not continue it.
    pub(crate) async fn push(
        &mut self,
        category: String,
        id: Uuid,
        version: Version,
        position: Position,
        event: NewEvent,
    ) -> anyhow::Result<()> {
        let continues = self
            .stream
            .as_ref()
            .is_some_and(|(c, i)| *c == category && *i == id)
            && self.first.get() + self.events.len() as u64 == version.get()
            && self.events.len() < self.max;
        if !continues {
            self.flush().await?;
            self.stream = Some((category, id));
            self.first = version;
        }
        self.events.push(event);
        self.last_position = position;
        Ok(())
    }

    /// Appends the batch being gathered, and saves the checkpoint now and then.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        let Some((category, id)) = self.stream.take() else {
            return Ok(());
        };
        let events = std::mem::take(&mut self.events);
        let count = events.len() as u64;
        let after = Version(self.first.get() - 1);
        match self
            .target
            .publish(&category, id, Expected::Exact(after), events.clone())
            .await
        {
            Ok(_) => self.sent += count,
            Err(error @ (Error::Conflict { .. } | Error::DuplicateEvent { .. })) => {
                self.reconcile(&category, id, after, events, error).await?;
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("cannot append {count} events to stream {category}/{id}")
                });
            }
        }
        self.stored_position = self.last_position;
        if self.saved_at.elapsed() >= CHECKPOINT_EVERY {
            self.save().await?;
        }
        Ok(())
    }

    /// After a refused append: the events the target holds already (same ids, same
    /// versions) are skipped and the rest appended; any other event there is a refusal.
    async fn reconcile(
        &mut self,
        category: &str,
        id: Uuid,
        after: Version,
        events: Vec<NewEvent>,
        refusal: Error,
    ) -> anyhow::Result<()> {
        let mut held = pin!(self.target.replay_one(category, id, after));
        let mut next = 0;
        while let Some(envelope) = held.next().await {
            let envelope = envelope?;
            match events.get(next) {
                Some(event) if event.event_id == envelope.event_id => next += 1,
                _ => bail!(
                    "the target already holds other events of stream {category}/{id} (version {} there is event {}, not the one being copied); \
                     copying into a store that holds other events of the same streams is refused",
                    envelope.version,
                    envelope.event_id
                ),
            }
            if next == events.len() {
                break;
            }
        }
        if next == 0 {
            // Nothing of ours is there, yet the append was refused.
            if after > Version::ZERO {
                bail!(
                    "stream {category}/{id} starts at version {} in the source (it was truncated) but the target holds nothing of it: \
                     the versions before cannot be recreated ({refusal})",
                    after.next()
                );
            }
            return Err(refusal)
                .with_context(|| format!("cannot append to stream {category}/{id}"));
        }
        self.present += next as u64;
        let rest: Vec<NewEvent> = events[next..].to_vec();
        if !rest.is_empty() {
            let count = rest.len() as u64;
            self.target
                .publish(
                    category,
                    id,
                    Expected::Exact(Version(after.get() + next as u64)),
                    rest,
                )
                .await
                .with_context(|| format!("cannot append to stream {category}/{id}"))?;
            self.sent += count;
        }
        Ok(())
    }

    /// Saves how far the stored events go (never past a batch still being gathered).
    pub(crate) async fn save(&mut self) -> anyhow::Result<()> {
        if let Some(job) = &self.job {
            if self.stored_position > Position::ZERO {
                self.target
                    .save_checkpoint(job, self.stored_position)
                    .await?;
            }
        }
        self.saved_at = Instant::now();
        Ok(())
    }

    /// Appends what is left and saves the checkpoint.
    pub(crate) async fn finish(&mut self) -> anyhow::Result<()> {
        self.flush().await?;
        self.save().await
    }
}

/// How many events the source is read ahead of the writer.
const READ_AHEAD: usize = 4_096;

/// Stops a task when dropped (on every way out of a copy).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The categories to read: those given, or every category of `store`.
async fn categories_of(store: &AnyStore, given: Vec<String>) -> anyhow::Result<Vec<String>> {
    if !given.is_empty() {
        crate::catalog::check_categories(store, &given).await?;
        return Ok(given);
    }
    Ok(store
        .categories()
        .await
        .context("cannot list the source's categories")?
        .into_iter()
        .map(|category| category.name)
        .collect())
}

fn progress(total: u64) -> ProgressBar {
    // Drawn on standard error only when it is a terminal.
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The event an envelope was made from.
fn event_of(envelope: &Envelope) -> NewEvent {
    NewEvent::from_payload(envelope.schema_version, envelope.payload.clone())
        .with_event_id(envelope.event_id)
        .with_timestamp(envelope.timestamp)
        .with_type(envelope.event_type.clone())
        .with_tags(envelope.tags.iter().cloned())
        .with_metadata(envelope.metadata.clone())
}

/// The copy job's name, from the source's first event of `names` (so that a run against
/// the same source resumes where the last one stopped); `None` if it holds none.
async fn job_name(source: &AnyStore, names: &[&str]) -> anyhow::Result<Option<String>> {
    let first = pin!(source.replay(names, Position::ZERO))
        .next()
        .await
        .transpose()?;
    Ok(first.map(|first| format!("esrc-copy-{}", first.event_id.simple())))
}

/// Reads the source's events of `categories` after `start` in a task that runs ahead of
/// the writer, so that the two overlap; the task stops when the guard is dropped.
fn read_ahead(
    source: &AnyStore,
    categories: &[String],
    start: Position,
) -> (
    tokio::sync::mpsc::Receiver<Result<Envelope, esrc::Error>>,
    AbortOnDrop,
) {
    let (sender, received) = tokio::sync::mpsc::channel(READ_AHEAD);
    let (source, categories) = (source.clone(), categories.to_vec());
    let reader = tokio::spawn(async move {
        let names: Vec<&str> = categories.iter().map(String::as_str).collect();
        let mut events = pin!(source.replay(&names, start));
        while let Some(envelope) = events.next().await {
            if sender.send(envelope).await.is_err() {
                return;
            }
        }
    });
    (received, AbortOnDrop(reader))
}

/// Reports what was copied, and fails if the target holds fewer events than the source.
async fn compare_counts(
    source: &AnyStore,
    target: &AnyStore,
    names: &[&str],
    writer: &Writer<'_>,
) -> anyhow::Result<()> {
    let in_source = source.count_after(names, Position::ZERO).await?;
    let in_target = target.count_after(names, Position::ZERO).await?;
    out!("{}", writer.report().await);
    out!(
        "The source holds {in_source} events of {}, the target {in_target}.",
        names.join(", ")
    );
    if in_target < in_source {
        bail!("the target holds fewer events than the source: run the copy again");
    }
    out!(
        "Snapshots and projections' checkpoints are not copied (positions differ between stores): projections rebuild on the target."
    );
    Ok(())
}

pub(crate) async fn copy(
    source: &AnyStore,
    target: &AnyStore,
    categories: Vec<String>,
    batch: usize,
) -> anyhow::Result<()> {
    let categories = categories_of(source, categories).await?;
    let names: Vec<&str> = categories.iter().map(String::as_str).collect();
    if names.is_empty() {
        out!("The source holds no events: nothing to copy.");
        return Ok(());
    }
    let Some(job) = job_name(source, &names).await? else {
        out!(
            "The source holds no events of {}: nothing to copy.",
            names.join(", ")
        );
        return Ok(());
    };
    let mut writer = Writer::new(target, Some(job), batch).await;
    let start = writer.resume_after().await?;
    if start > Position::ZERO {
        out!("Resuming after source position {start}.");
    }
    let total = source.count_after(&names, start).await?;
    let bar = progress(total);
    let (mut received, _stop_reading) = read_ahead(source, &categories, start);
    // One listener for the whole copy: a signal that came between two events would be
    // lost to a listener made for each.
    let mut interrupt = pin!(tokio::signal::ctrl_c());
    loop {
        let envelope = tokio::select! {
            _ = &mut interrupt => {
                bar.abandon();
                writer.save().await?;
                return Err(Interrupted("interrupted: run the same command again to go on where it stopped".into()).into());
            }
            next = received.recv() => match next {
                Some(envelope) => envelope.context("cannot read the source")?,
                None => break,
            },
        };
        let event = event_of(&envelope);
        writer
            .push(
                envelope.category,
                envelope.aggregate_id,
                envelope.version,
                envelope.position,
                event,
            )
            .await?;
        bar.inc(1);
    }
    writer.finish().await?;
    bar.finish_and_clear();

    compare_counts(source, target, &names, &writer).await
}

pub(crate) async fn export(store: &AnyStore, categories: Vec<String>) -> anyhow::Result<()> {
    let categories = categories_of(store, categories).await?;
    let names: Vec<&str> = categories.iter().map(String::as_str).collect();
    if names.is_empty() {
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut events = pin!(store.replay(&names, Position::ZERO));
    let mut count = 0u64;
    while let Some(envelope) = events.next().await {
        let envelope = envelope.context("cannot read the store")?;
        serde_json::to_writer(&mut out, &Record::from_envelope(&envelope))?;
        out.write_all(b"\n").map_err(crate::stdout_error)?;
        count += 1;
    }
    out.flush()?;
    eprintln!("exported {count} events");
    Ok(())
}

/// Reads the file on standard input line by line and appends as it goes: a malformed
/// line stops the import there, with its number; the lines before it are stored, and the
/// same command, run again on the mended file, goes on without storing anything twice.
pub(crate) async fn import(store: &AnyStore, batch: usize) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let lines = stdin.lock().lines();
    let mut writer: Option<Writer<'_>> = None;
    let mut skipped = 0u64;
    let mut start = Position::ZERO;
    for (index, line) in lines.enumerate() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = Record::parse(&line).and_then(|record| {
            let position = Position(record.position);
            record.into_event().map(|event| (position, event))
        });
        let (position, (category, id, version, event)) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                if let Some(writer) = writer.as_mut() {
                    writer.finish().await?;
                }
                return Err(DataError(format!(
                    "line {}: {error}; the lines before it are stored: mend the line and run the same command again",
                    index + 1
                ))
                .into());
            }
        };
        let writer = match writer.as_mut() {
            Some(writer) => writer,
            None => {
                // Named after the file's first event, so that a run on the same file
                // resumes where the last one stopped.
                let job = format!("esrc-import-{}", event.event_id.simple());
                let fresh = Writer::new(store, Some(job), batch).await;
                start = fresh.resume_after().await?;
                writer.insert(fresh)
            }
        };
        if position <= start && start > Position::ZERO {
            skipped += 1;
            continue;
        }
        writer.push(category, id, version, position, event).await?;
    }
    let Some(mut writer) = writer else {
        out!("The input holds no events.");
        return Ok(());
    };
    writer.finish().await?;
    out!("{}", writer.report().await);
    if skipped > 0 {
        out!("{skipped} lines were skipped: an earlier run imported them.");
    }
    Ok(())
}
