//! Finite reads: one stream from its last known message, and replays of categories
//! merged by sequence (how messages are read without skipping is in `messages.rs`).

use esrc_core::backend::{opened_after, validate_name};
use esrc_core::{CategoryStats, Envelope, Error, Position, Replay, ReplayOne, Version};
use futures::{Stream, StreamExt};
use uuid::Uuid;

use crate::core::{NatsStore, Tail, filters};
use crate::error::{NatsError, client, transient};
use crate::messages::{Span, pauses};

impl ReplayOne for NatsStore {
    fn replay_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.read_one(category, id, after, Position::ZERO)
    }

    /// Starts just after `at` (a root's or a snapshot's position): a read after a
    /// snapshot fetches only the messages after it. A position that is not the event's at
    /// `after` is caught (the first message read is not the next version, or the position
    /// is past the subject's last message) and the subject is read from its first message
    /// instead.
    fn replay_one_from(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        self.read_one(category, id, after, at)
    }
}

impl NatsStore {
    fn read_one(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<> {
        let span = esrc_core::backend::store_span(crate::core::SYSTEM, "read_stream", category);
        esrc_core::backend::traced_read(span, self.read_one_with(category, id, after, at, None))
    }

    /// [`NatsStore::read_one`], with the subject's last message already looked up
    /// (`tail`), or not (`None`).
    pub(crate) fn read_one_with(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
        tail: Option<Result<Option<Tail>, Error>>,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<> {
        let subject = self.subject(category, id);
        let category = category.to_owned();
        let valid = validate_name(&category);
        let opening = {
            let (store, subject, category) = (self.clone(), subject.clone(), category.clone());
            async move {
                valid?;
                // A new stream, or a cached root with nothing newer, is the common case:
                // one lookup at the stream's leader says so. The read then goes on to that
                // last message, so it sees the caller's writes even if a replica that is
                // behind answers first.
                let tail = match tail {
                    Some(tail) => tail,
                    None => store.tail(&subject).await,
                };
                store.span_after(&category, id, after, at, tail)
            }
        };
        let store = self.clone();
        opened_after(opening, move |span| {
            async_stream::stream! {
                let Some((mut start, until)) = span else {
                    return;
                };
                let mut last = None;
                'read: loop {
                    let mut events = store.envelopes(store.read_subject(&subject, start + 1, until));
                    while let Some(item) = events.next().await {
                        match item {
                            Ok(envelope) if envelope.version <= after => {}
                            // Started after a position that was not the event's at `after`:
                            // read the subject from its first message.
                            Ok(envelope)
                                if last.is_none() && start > 0 && envelope.version != after.next() =>
                            {
                                start = 0;
                                continue 'read;
                            }
                            Ok(envelope) => {
                                last = Some((envelope.version, envelope.position));
                                yield Ok(envelope);
                            }
                            Err(error) => {
                                yield Err(error);
                                return;
                            }
                        }
                    }
                    break;
                }
                if let Some((version, position)) = last {
                    store.inner.tails.remember(&category, id, version, position);
                }
            }
        })
    }

    /// Which messages of `(category, id)` hold its events after `after`, given its last
    /// message (`tail`): from where to where, or `None` when there are none.
    fn span_after(
        &self,
        category: &str,
        id: Uuid,
        after: Version,
        at: Position,
        tail: Result<Option<Tail>, Error>,
    ) -> Result<Option<(u64, u64)>, Error> {
        match tail {
            Ok(Some(tail)) if tail.version > after => {
                let start = match self.start_after(category, id, after) {
                    0 if at.get() < tail.sequence => at.get(),
                    remembered => remembered,
                };
                Ok(Some((start, tail.sequence)))
            }
            Ok(_) => Ok(None),
            Err(error) if error.is_retryable() => Err(error),
            // A last message esrc did not write: read the whole subject, which reports
            // each bad message as it comes, and loses nothing.
            Err(_) => Ok(Some((0, 0))),
        }
    }

    /// The spans a replay of `filters` after `after` reads. On a replicated stream, each
    /// category up to its last message as the leader knows it: the replay sees every
    /// write acknowledged before it began, even if a replica that is behind answers.
    /// With one replica, a consumer reads what was stored when it was made.
    pub(crate) async fn spans(
        &self,
        filters: Vec<String>,
        after: Position,
    ) -> Result<Vec<Span>, Error> {
        let start = after.get() + 1;
        let mut spans = Vec::with_capacity(filters.len());
        for filter in filters {
            if !self.inner.replicated {
                spans.push(Span {
                    filter,
                    start,
                    until: 0,
                });
                continue;
            }
            match self.last_sequence(&filter).await? {
                Some(until) if until > after.get() => spans.push(Span {
                    filter,
                    start,
                    until,
                }),
                _ => {}
            }
        }
        Ok(spans)
    }
}

impl Replay for NatsStore {
    fn replay(
        &self,
        categories: &[&str],
        after: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let span = esrc_core::backend::store_span(
            crate::core::SYSTEM,
            "read_categories",
            categories.join(","),
        );
        esrc_core::backend::traced_read(span, {
            let filters = filters(self, categories);
            let store = self.clone();
            let opening = async move { store.spans(filters?, after).await };
            let store = self.clone();
            opened_after(opening, move |spans| store.envelopes(store.read(spans)))
        })
    }

    /// Counts with a consumer's pending count. A stream whose every event was truncated
    /// keeps one marker message, which is counted too.
    async fn count_after(&self, categories: &[&str], after: Position) -> Result<u64, Error> {
        let filters = filters(self, categories)?;
        let patience = self.inner.config.read_timeout;
        let next = after.get() + 1;
        let mut pauses = pauses();
        let made = tokio::time::timeout(patience, async {
            loop {
                if let Some(made) = self
                    .inner
                    .consumers
                    .make(&filters, next, &mut pauses)
                    .await?
                {
                    return Ok::<_, Error>(made);
                }
            }
        })
        .await;
        match made {
            Ok(made) => {
                let (consumer, _guard) = made?;
                Ok(consumer.cached_info().num_pending)
            }
            Err(_) => Err(transient(NatsError::Stalled {
                sequence: next,
                waited: patience,
            })),
        }
    }

    /// Counts from the stream's subjects (`<prefix>.<category>.<id>`): one stream per
    /// subject. A stream whose every event was truncated keeps one marker message,
    /// which is counted as an event.
    async fn categories(&self) -> Result<Vec<CategoryStats>, Error> {
        let prefix = format!("{}.", self.inner.config.prefix);
        let mut subjects = self
            .inner
            .stream
            .info_with_subjects(self.inner.config.subjects())
            .await
            .map_err(client)?;
        let mut counts: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        while let Some(subject) = subjects.next().await {
            let (subject, messages) = subject.map_err(client)?;
            // Markers (`~t`, `~c`) are under a token no category can have.
            let Some((category, _id)) = subject
                .strip_prefix(&prefix)
                .filter(|rest| !rest.starts_with('~'))
                .and_then(|rest| rest.rsplit_once('.'))
            else {
                continue;
            };
            let entry = counts.entry(category.to_owned()).or_default();
            entry.0 += messages as u64;
            entry.1 += 1;
        }
        Ok(counts
            .into_iter()
            .map(|(name, (events, streams))| CategoryStats::new(name, events, streams))
            .collect())
    }

    async fn head(&self, categories: &[&str]) -> Result<Position, Error> {
        let mut head = Position::ZERO;
        for filter in filters(self, categories)? {
            // The last message on any subject of the category, as the leader knows it; a
            // truncation marker is not an event, but its sequence bounds the head all
            // the same.
            if let Some(sequence) = self.last_sequence(&filter).await? {
                head = head.max(Position(sequence));
            }
        }
        Ok(head)
    }
}
