//! Decisions across streams, checked by the server: every tag of an event is also a
//! marker message in the event's atomic batch (`codec.rs`), so that tags and types are
//! subject filters; a condition becomes one filter per item, each filter's last sequence
//! is looked up, the query is read up to there for an exact answer, and the batch carries
//! one `Nats-Expected-Last-Subject-Sequence` per filter, which the server checks against
//! the stream as it was before the batch. A filter written to meanwhile fails the batch;
//! the store then looks again, so a filter wider than its item costs a retry, never a
//! refusal the query does not justify.

use std::collections::BTreeSet;

use bytes::Bytes;
use esrc_core::backend::{check_writes, opened_after, writes_outcome};
use esrc_core::{
    Appended, Condition, Decide, Envelope, Error, Item, Position, Query, Version, Write,
};
use futures::{Stream, StreamExt};

use crate::codec;
use crate::core::{NatsStore, Tail};
use crate::error::{NatsError, transient};
use crate::messages::{Messages, Stored};
use crate::store::{MAX_BATCH, Outgoing, Sent, lost_races};

impl Decide for NatsStore {
    /// The stream's last sequence, as its leader knows it: a batch is stored whole, so
    /// every message up to it is readable. From the stream's info, whose cost does not
    /// grow with the stream (the last message on `<prefix>.>` does: measured 2 ms at
    /// 2·10⁴ messages, 130 ms at 2·10⁶). A stream shared with other prefixes may have
    /// moved past this store's last message: the answer is complete up to it all the same.
    async fn horizon(&self) -> Result<Position, Error> {
        let info = Box::pin(self.inner.stream.get_info())
            .await
            .map_err(crate::error::client)?;
        Ok(Position(info.state.last_sequence))
    }

    fn query(
        &self,
        query: &Query,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<'_> {
        let span = esrc_core::backend::store_span(crate::core::SYSTEM, "query", "*");
        esrc_core::backend::traced_read(span, {
            let query = query.normalized();
            let store = self.clone();
            let opening = async move {
                let query = query?;
                let spans = store.spans(store.read_filters(&query), after).await?;
                Ok((query, spans))
            };
            let store = self.clone();
            opened_after(opening, move |(query, spans)| {
                store.matching(query, store.read(spans), after, until)
            })
        })
    }

    async fn append_if(
        &self,
        writes: Vec<Write>,
        condition: Option<Condition>,
    ) -> Result<Vec<Appended>, Error> {
        esrc_core::backend::traced(
            esrc_core::backend::store_span(
                crate::core::SYSTEM,
                "append_if",
                esrc_core::backend::target_of(&writes),
            ),
            async move {
                let condition = check_writes(&writes, condition.as_ref(), MAX_BATCH)?;
                let subjects: Vec<String> = writes
                    .iter()
                    .map(|write| self.subject(&write.category, write.id))
                    .collect();
                let filters = condition
                    .as_ref()
                    .map(|condition| self.check_filters(&condition.query, &subjects))
                    .unwrap_or_default();
                let deadline = tokio::time::Instant::now() + self.inner.config.append_deadline;
                let mut losses = lost_races();
                let mut first_try = true;
                loop {
                    let tails =
                        match Box::pin(self.write_tails(&writes, &subjects, first_try)).await? {
                            Ok(tails) => tails,
                            Err(done) => return Ok(done),
                        };
                    first_try = false;
                    let mut checks = Vec::with_capacity(filters.len());
                    if let Some(condition) = &condition {
                        let written = named_tails(&condition.query, &writes, &tails);
                        let look_up = self.look_up_checks(condition, &filters, &writes, written);
                        match Box::pin(look_up).await? {
                            Ok(found) => checks = found,
                            Err(done) => return Ok(done),
                        }
                    }
                    let (messages, ends) = self.batch(&writes, &subjects, &tails, checks)?;
                    let count = messages.len();
                    match Box::pin(self.send_batch(messages)).await? {
                        Sent::Stored { sequence } => {
                            return Ok(self.stored(&writes, &tails, &ends, sequence, count));
                        }
                        Sent::Duplicate => {
                            return match Box::pin(self.retried_writes(&writes)).await? {
                                Some(originals) => Ok(originals),
                                None => Err(Error::duplicate_event(writes[0].events[0].event_id)),
                            };
                        }
                        // A stream or a checked filter moved since the lookup: look again (the
                        // exact check then says whether it was a conflict or a wider filter).
                        Sent::WrongLastSequence => {
                            tracing::debug!(
                                "esrc: a checked subject moved since its lookup; deciding again"
                            );
                            if tokio::time::Instant::now() >= deadline {
                                return Err(transient(NatsError::Contended(
                                    self.inner.config.append_deadline,
                                )));
                            }
                            tokio::time::sleep(losses.pause()).await;
                        }
                        // These writes, sent before, are being stored: once they are, the
                        // next look finds them as a retry.
                        Sent::InProcess(error) => {
                            if tokio::time::Instant::now() >= deadline {
                                return Err(error);
                            }
                            tokio::time::sleep(losses.pause()).await;
                        }
                    }
                }
            },
        )
        .await
    }
}

/// A filter a conditional append checks, and the last sequence it expects on it.
type Check = (String, u64);

/// How many marked events a query fetches at once.
const FETCHES: usize = 16;

/// An event a query's answer holds: the message read, or the one a marker points at.
enum Wanted {
    Here(Stored),
    Marked(u64),
}

impl NatsStore {
    /// The subject filters whose messages hold (or point at) every event `query` can
    /// match: an item's first tag's markers (of its types, if it names any), else its
    /// stream, else its types' categories, else every stream. None covers another: a
    /// consumer refuses overlapping filters.
    fn read_filters(&self, query: &Query) -> Vec<String> {
        let prefix = &self.inner.config.prefix;
        let mut filters = BTreeSet::new();
        for item in &query.items {
            match (item.tags.first(), &item.stream) {
                (Some(tag), _) if !item.types.is_empty() => {
                    for t in &item.types {
                        filters.insert(codec::tag_marker_subject(
                            prefix,
                            tag,
                            &t.category,
                            &t.name,
                        ));
                    }
                }
                (Some(tag), _) => {
                    let token = codec::tag_token(tag);
                    filters.insert(format!("{prefix}.{}.{token}.>", codec::TAG_MARKERS));
                }
                (None, Some(stream)) => {
                    filters.insert(self.subject(&stream.category, stream.id));
                }
                (None, None) => filters.extend(self.category_filters(item)),
            }
        }
        uncovered(filters)
    }

    /// The filters a condition on `query` checks: for each item, its first tag's markers
    /// (of its types' category, when they share one), else its stream, else its types'
    /// categories, else every stream. Wildcards wherever they are exact enough: the
    /// server refuses a literal filter on a subject the batch writes before it. A stream
    /// the append writes is checked by its own expectation instead.
    fn check_filters(&self, query: &Query, written: &[String]) -> Vec<String> {
        let prefix = &self.inner.config.prefix;
        let mut filters = BTreeSet::new();
        for item in &query.items {
            match (item.tags.first(), &item.stream) {
                (Some(tag), _) => {
                    let token = codec::tag_token(tag);
                    let categories: BTreeSet<&str> =
                        item.types.iter().map(|t| t.category.as_str()).collect();
                    let within = match categories.into_iter().collect::<Vec<_>>()[..] {
                        [category] => format!("{category}.*"),
                        _ => ">".to_owned(),
                    };
                    filters.insert(format!("{prefix}.{}.{token}.{within}", codec::TAG_MARKERS));
                }
                (None, Some(stream)) => {
                    let subject = self.subject(&stream.category, stream.id);
                    if !written.contains(&subject) {
                        filters.insert(subject);
                    }
                }
                (None, None) => filters.extend(self.category_filters(item)),
            }
        }
        uncovered(filters).into_iter().collect()
    }

    /// The filters of an item's types' categories, or of every stream.
    fn category_filters(&self, item: &Item) -> Vec<String> {
        if item.types.is_empty() {
            return vec![format!("{}.*.*", self.inner.config.prefix)];
        }
        item.types
            .iter()
            .map(|t| self.filter(&t.category))
            .collect()
    }

    /// The events `query` matches among `messages` (events, and tag markers pointing at
    /// events), in `(after, until]`, ascending. A marker follows its event in the batch
    /// that stored both, so the events come in order; a marker whose event was truncated
    /// is skipped. The marked events are fetched [`FETCHES`] at a time, in order.
    fn matching(
        &self,
        query: Query,
        messages: Messages,
        after: Position,
        until: Position,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + use<> {
        let store = self.clone();
        let prefix_len = self.inner.config.prefix.len();
        // The markers of an event at `until` follow it, within one batch.
        let last_marker = until.get().saturating_add(MAX_BATCH as u64 * 2);
        let until = until.get();
        let mut last = after.get();
        messages
            .take_while(move |message| {
                let more = message
                    .as_ref()
                    .map_or(true, |message| message.sequence <= last_marker);
                std::future::ready(more)
            })
            // Each event once, in order: what a message is or points at, if it is new.
            .filter_map(move |message| {
                let wanted = match message {
                    Err(error) => Some(Err(error)),
                    Ok(message) => {
                        let target =
                            codec::marked_event(message.headers.as_ref(), message.sequence);
                        let sequence = target.unwrap_or(message.sequence);
                        (sequence > last && sequence <= until).then(|| {
                            last = sequence;
                            Ok(match target {
                                Some(sequence) => Wanted::Marked(sequence),
                                None => Wanted::Here(message),
                            })
                        })
                    }
                };
                std::future::ready(wanted)
            })
            .map(move |wanted| {
                let store = store.clone();
                async move {
                    let message = match wanted? {
                        Wanted::Here(message) => message,
                        Wanted::Marked(sequence) => {
                            let Some(event) = Box::pin(store.message_at(sequence)).await? else {
                                return Ok(None);
                            };
                            Stored {
                                subject: event.subject,
                                sequence,
                                headers: Some(event.headers),
                                payload: event.payload,
                            }
                        }
                    };
                    codec::envelope(
                        prefix_len,
                        &message.subject,
                        message.sequence,
                        message.headers.as_ref(),
                        message.payload,
                    )
                }
            })
            .buffered(FETCHES)
            .filter_map(move |envelope| {
                let found = match envelope {
                    Ok(Some(envelope)) if query.matches(&envelope) => Some(Ok(envelope)),
                    Ok(_) => None,
                    Err(error) => Some(Err(error)),
                };
                std::future::ready(found)
            })
    }

    /// The tail of each write's stream, checked against its expectation; or, when one
    /// does not hold, the original outcomes if these writes were stored before (a retry),
    /// else the conflict. On the first try a tail this store just wrote needs no lookup.
    async fn write_tails(
        &self,
        writes: &[Write],
        subjects: &[String],
        first_try: bool,
    ) -> Result<Result<Vec<Tail>, Vec<Appended>>, Error> {
        let mut tails = Vec::with_capacity(writes.len());
        for (write, subject) in writes.iter().zip(subjects) {
            let known = first_try
                .then(|| self.known_tail(&write.category, write.id, write.expected))
                .flatten();
            let tail = match known {
                Some(tail) => tail,
                None => self.tail(subject).await?.unwrap_or(Tail::NONE),
            };
            if !write.expected.matches(tail.version) {
                if let Some(originals) = Box::pin(self.retried_writes(writes)).await? {
                    return Ok(Err(originals));
                }
                return Err(Error::conflict(
                    write.category.clone(),
                    write.id,
                    write.expected,
                    tail.version,
                ));
            }
            tails.push(tail);
        }
        Ok(Ok(tails))
    }

    /// Each filter's last sequence; when one moved past the condition's position, the
    /// query read up to there decides: a match is a failed condition (unless these
    /// writes were stored before: their original outcomes), none means the filter was
    /// wider than the query, and the append expects what it found.
    ///
    /// `written` is the last sequence of the streams the query names that the append
    /// writes: their own expectations check them, but the query still reads them.
    async fn look_up_checks(
        &self,
        condition: &Condition,
        filters: &[String],
        writes: &[Write],
        written: u64,
    ) -> Result<Result<Vec<Check>, Vec<Appended>>, Error> {
        let mut checks = Vec::with_capacity(filters.len());
        let mut newest = written;
        // The lookups are independent: one round trip's time for all of them.
        let lasts = futures::future::try_join_all(
            filters
                .iter()
                .map(|filter| Box::pin(self.last_sequence(filter))),
        )
        .await?;
        for (filter, last) in filters.iter().zip(lasts) {
            let last = last.unwrap_or(0);
            newest = newest.max(last);
            checks.push((filter.clone(), last));
        }
        if newest <= condition.after.get() {
            return Ok(Ok(checks));
        }
        let until = Position(newest.max(condition.after.get()));
        let mut found = Box::pin(self.query(&condition.query, condition.after, until));
        if let Some(first) = found.next().await {
            let position = first?.position;
            if let Some(originals) = Box::pin(self.retried_writes(writes)).await? {
                return Ok(Err(originals));
            }
            return Err(Error::condition_failed(condition.clone(), position));
        }
        Ok(Ok(checks))
    }

    /// The messages of one attempt: each write's events (the first with its stream's
    /// expectation), each followed by its tag markers, with the condition's checks on
    /// messages that carry no other (check markers first, if those are too few); and the
    /// index of each write's last event.
    fn batch(
        &self,
        writes: &[Write],
        subjects: &[String],
        tails: &[Tail],
        checks: Vec<Check>,
    ) -> Result<(Vec<Outgoing>, Vec<usize>), Error> {
        let prefix = &self.inner.config.prefix;
        let mut messages = Vec::new();
        let mut free = Vec::new();
        let mut ends = Vec::with_capacity(writes.len());
        for ((write, subject), tail) in writes.iter().zip(subjects).zip(tails) {
            for (index, (event, version)) in write
                .events
                .iter()
                .zip(tail.version.next().get()..)
                .enumerate()
            {
                let (mut headers, payload) = codec::event_message(event, Version(version));
                if index == 0 {
                    let expected = tail.sequence.to_string();
                    headers.insert(codec::EXPECTED_LAST_SUBJECT_SEQUENCE, expected.as_str());
                } else {
                    free.push(messages.len());
                }
                messages.push(Outgoing {
                    subject: subject.clone(),
                    headers,
                    payload,
                });
                for (back, tag) in (1..).zip(&event.tags) {
                    free.push(messages.len());
                    messages.push(Outgoing {
                        subject: codec::tag_marker_subject(
                            prefix,
                            tag,
                            &write.category,
                            &event.event_type,
                        ),
                        headers: codec::tag_marker_headers(back),
                        payload: Bytes::new(),
                    });
                }
            }
            ends.push(messages.len() - 1 - write.events.last().map_or(0, |e| e.tags.len()));
        }
        let padding = checks.len().saturating_sub(free.len());
        if messages.len() + padding > MAX_BATCH {
            return Err(Error::too_many_events(messages.len() + padding, MAX_BATCH));
        }
        let carriers = (0..padding).chain(free.into_iter().map(|index| index + padding));
        let padded = (0..padding).map(|_| Outgoing {
            subject: format!("{prefix}.{}", codec::CHECK_MARKERS),
            headers: codec::check_marker_headers(),
            payload: Bytes::new(),
        });
        let mut messages: Vec<Outgoing> = padded.chain(messages).collect();
        for ((filter, last), carrier) in checks.into_iter().zip(carriers) {
            let headers = &mut messages[carrier].headers;
            headers.insert(
                codec::EXPECTED_LAST_SUBJECT_SEQUENCE,
                last.to_string().as_str(),
            );
            headers.insert(codec::EXPECTED_SUBJECT, filter.as_str());
        }
        let ends = ends.into_iter().map(|end| end + padding).collect();
        Ok((messages, ends))
    }

    /// The outcome of each write of a batch of `count` messages whose last is at
    /// `sequence` (a batch's sequences are contiguous); remembered as the streams' tails.
    fn stored(
        &self,
        writes: &[Write],
        tails: &[Tail],
        ends: &[usize],
        sequence: u64,
        count: usize,
    ) -> Vec<Appended> {
        let first = sequence + 1 - count as u64;
        writes
            .iter()
            .zip(tails)
            .zip(ends)
            .map(|((write, tail), end)| {
                let version = Version(tail.version.get() + write.events.len() as u64);
                let position = Position(first + *end as u64);
                self.inner
                    .tails
                    .remember(&write.category, write.id, version, position);
                Appended::new(version, position)
            })
            .collect()
    }

    /// If the writes' event ids are stored: the original outcomes when every write is a
    /// retry of what stored its events, `DuplicateEvent` for any other reuse.
    async fn retried_writes(&self, writes: &[Write]) -> Result<Option<Vec<Appended>>, Error> {
        let mut originals = Vec::with_capacity(writes.len());
        for write in writes {
            let subject = self.subject(&write.category, write.id);
            let first = write.expected.version().map(Version::next);
            originals.push(Box::pin(self.retried(&subject, &write.events, first)).await?);
        }
        writes_outcome(writes, originals)
    }
}

/// The newest of the `tails` of `writes` whose stream an item of `query` names.
fn named_tails(query: &Query, writes: &[Write], tails: &[Tail]) -> u64 {
    writes
        .iter()
        .zip(tails)
        .filter(|(write, _)| {
            query.items.iter().any(|item| {
                item.stream
                    .as_ref()
                    .is_some_and(|s| s.category == write.category && s.id == write.id)
            })
        })
        .map(|(_, tail)| tail.sequence)
        .max()
        .unwrap_or(0)
}

/// `filters` without those another of them covers (`a.>` covers `a.b.c`, `a.*` covers
/// `a.b`).
fn uncovered(filters: BTreeSet<String>) -> Vec<String> {
    filters
        .iter()
        .filter(|filter| {
            !filters
                .iter()
                .any(|other| other != *filter && covers(other, filter))
        })
        .cloned()
        .collect()
}

/// Whether every subject `inner` matches is matched by `outer`.
fn covers(outer: &str, inner: &str) -> bool {
    let mut inner_tokens = inner.split('.');
    for token in outer.split('.') {
        match (token, inner_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(other)) if other != ">" => {}
            (token, Some(other)) if token == other => {}
            _ => return false,
        }
    }
    inner_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn filters_cover_what_they_match() {
        assert!(covers("p.~t.a.>", "p.~t.a.course.Enrolled"));
        assert!(covers("p.~t.a.>", "p.~t.a.course.*"));
        assert!(covers("p.*.*", "p.course.*"));
        assert!(covers("p.course.*", "p.course.0190"));
        assert!(!covers("p.course.*", "p.*.*"));
        assert!(!covers("p.course.*", "p.course.>"));
        assert!(!covers("p.~t.a.>", "p.~t.b.>"));
        assert!(!covers("p.a", "p.a.b"));
    }
}
