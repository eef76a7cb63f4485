//! Decisions across streams on PostgreSQL.
//!
//! - **Reads** answer a query from the index tables: an item with tags walks the B-tree
//!   of `event_tags` for its first tag in position order (joining the others), an item
//!   of types the `(category, event_type, position)` index, a stream item the stream's.
//!   Each page asks every item for at most a page of positions and merges them, so a
//!   page costs what it returns, not what the store holds. Reads end at the horizon:
//!   gap-safe, as replays are.
//! - **Conditional appends** run in one READ COMMITTED transaction: first the locks
//!   (the writer lock, then, in key order, every tag lock: exclusive for a tag the
//!   condition names, shared for the tags the new events carry), then the check (a
//!   later statement, so that it sees every append that held a lock before), then the
//!   writes. Every append of a tagged event holds its tags' locks shared until it
//!   commits, so an event the check cannot see yet cannot match the condition. An
//!   item with tags locks its first tag only (every event it matches carries it); an
//!   item without tags (types only, a stream, or everything) takes the writer lock
//!   exclusively instead, which waits for every append in flight and holds the others
//!   back until the conditional append commits: exact, but it serializes the store's
//!   writers for that time. No check is ever looser than its query, and none refuses
//!   more: no false conflicts.

use esrc_core::backend::{check_writes, opened_after, writes_outcome};
use esrc_core::{
    Appended, Condition, Decide, Envelope, Error, Item, Position, Query, Version, Write,
};
use futures::Stream;
use sqlx::{AssertSqlSafe, Postgres};
use uuid::Uuid;

use crate::codec::{Batch, envelope, to_i64, to_u64};
use crate::core::{PgStore, row_position};
use crate::error::{BACKEND, EVENT_ID_KEY, Failure, STREAM_VERSION_KEY, backend};
use crate::schema::{COLUMNS, LOCK_CLASS, TX_SHIFT};
use crate::store::{ANY_ATTEMPTS, Outcome};

/// A value bound to a query built for one [`Query`]'s shape.
enum Param {
    Text(String),
    Uuid(Uuid),
}

/// A statement built for one query: `$1` is `after`, `$2` `until`, `$3` the page size;
/// the items' values follow.
struct Built {
    sql: String,
    params: Vec<Param>,
}

impl Built {
    fn param(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len() + 3)
    }

    fn bind(
        &self,
        after: i64,
        until: i64,
        limit: i64,
    ) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.sql.as_str()))
            .bind(after)
            .bind(until)
            .bind(limit);
        for param in &self.params {
            query = match param {
                Param::Text(text) => query.bind(text.as_str()),
                Param::Uuid(id) => query.bind(*id),
            };
        }
        query
    }
}

/// The positions of the events `item` matches in `($1, $2]`, ascending, at most `$3`.
fn item_positions(s: &str, item: &Item, built: &mut Built) -> String {
    let mut wheres = Vec::new();
    let (mut from, at) = match item.tags.split_first() {
        Some((first, rest)) => {
            let mut from = format!("{s}.event_tags t0");
            let first = built.param(Param::Text(first.as_str().to_owned()));
            wheres.push(format!("t0.tag = {first}"));
            for (n, tag) in rest.iter().enumerate() {
                let tag = built.param(Param::Text(tag.as_str().to_owned()));
                let n = n + 1;
                from.push_str(&format!(
                    " JOIN {s}.event_tags t{n} ON t{n}.tag = {tag} AND t{n}.position = t0.position"
                ));
            }
            (from, "t0.position")
        }
        None => (format!("{s}.events x"), "x.position"),
    };
    wheres.push(format!("{at} > $1 AND {at} <= $2"));
    let mut needs_event = false;
    if !item.types.is_empty() {
        needs_event = true;
        let types: Vec<String> = item
            .types
            .iter()
            .map(|event_type| {
                let category = built.param(Param::Text(event_type.category.clone()));
                let name = built.param(Param::Text(event_type.name.clone()));
                format!("(x.category = {category} AND x.event_type = {name})")
            })
            .collect();
        wheres.push(format!("({})", types.join(" OR ")));
    }
    if let Some(stream) = &item.stream {
        needs_event = true;
        let category = built.param(Param::Text(stream.category.clone()));
        let id = built.param(Param::Uuid(stream.id));
        wheres.push(format!("x.category = {category} AND x.aggregate_id = {id}"));
    }
    if needs_event && !item.tags.is_empty() {
        from.push_str(&format!(" JOIN {s}.events x ON x.position = t0.position"));
    }
    format!(
        "(SELECT {at} AS position FROM {from} WHERE {} ORDER BY {at} LIMIT $3)",
        wheres.join(" AND ")
    )
}

/// The positions `query` matches in `($1, $2]`, each item's at most `$3`.
fn query_positions(s: &str, query: &Query, built: &mut Built) -> String {
    query
        .items
        .iter()
        .map(|item| item_positions(s, item, built))
        .collect::<Vec<_>>()
        .join(" UNION ")
}

/// A page of the events `query` matches in `($1, $2]`, at most `$3`.
fn page_statement(schema: &str, query: &Query) -> Built {
    let s = format!("\"{schema}\"");
    let mut built = Built {
        sql: String::new(),
        params: Vec::new(),
    };
    let positions = query_positions(&s, query, &mut built);
    built.sql = format!(
        "SELECT {COLUMNS} FROM {s}.events WHERE position IN ({positions})
         ORDER BY position LIMIT $3"
    );
    built
}

/// The first position `query` matches in `($1, $2]` (`$3` is 1).
fn first_statement(schema: &str, query: &Query) -> Built {
    let s = format!("\"{schema}\"");
    let mut built = Built {
        sql: String::new(),
        params: Vec::new(),
    };
    let positions = query_positions(&s, query, &mut built);
    built.sql = format!("SELECT min(position) FROM ({positions}) AS q");
    built
}

/// Why a conditional append stored nothing.
enum Refusal {
    /// An event matching the condition is stored at this position.
    Condition(i64),
    /// Write number `.0` expected another version; the stream is at `.1`.
    Mismatch(usize, Version),
    Failed(Failure),
}

impl From<Failure> for Refusal {
    fn from(failure: Failure) -> Self {
        Refusal::Failed(failure)
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(error: sqlx::Error) -> Self {
        Refusal::Failed(error.into())
    }
}

impl Decide for PgStore {
    async fn horizon(&self) -> Result<Position, Error> {
        let limit = self.replay_limit().await?;
        Ok(Position(to_u64("position", limit)?.saturating_sub(1)))
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
            let schema = self.inner.sql.schema.clone();
            let opening = async move { query.map(|query| page_statement(&schema, &query)) };
            opened_after(opening, move |built| {
                self.query_pages(built, to_i64(after.get()), to_i64(until.get()))
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
                let condition = check_writes(&writes, condition.as_ref(), (1 << TX_SHIFT) - 1)?;
                let batches = writes
                    .iter()
                    .map(|write| Batch::new(&write.events))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let refusal = match self
                        .try_append_if(&writes, &batches, condition.as_ref())
                        .await
                    {
                        Ok(appended) => {
                            let inner = &self.inner;
                            let interval = inner.config.notify_interval;
                            inner
                                .signals
                                .appended(&inner.pool, &inner.sql.channel, interval);
                            return Ok(appended);
                        }
                        Err(refusal) => refusal,
                    };
                    // A retry of writes that were stored: the original outcomes, whatever the
                    // condition says by now.
                    if let Some(original) = self.retried_writes(&writes, &batches).await? {
                        return Ok(original);
                    }
                    match self
                        .refused(refusal, &writes, &batches, condition.as_ref())
                        .await?
                    {
                        Some(error) => return Err(error),
                        // A race for a stream's next version lost to another writer.
                        None if attempt < ANY_ATTEMPTS => {}
                        None => {
                            return Err(Error::backend(
                                BACKEND,
                                true,
                                "lost every race for the streams' next versions",
                            ));
                        }
                    }
                }
            },
        )
        .await
    }
}

impl PgStore {
    /// The error a refused conditional append reports, or `None` when it lost a race for
    /// a stream's next version that another try may win (a stream written with `Any`,
    /// or no stream found away from its expectation).
    async fn refused(
        &self,
        refusal: Refusal,
        writes: &[Write],
        batches: &[Batch<'_>],
        condition: Option<&Condition>,
    ) -> Result<Option<Error>, Error> {
        Ok(Some(match refusal {
            Refusal::Condition(position) => match condition {
                Some(condition) => Error::condition_failed(
                    condition.clone(),
                    Position(to_u64("position", position)?),
                ),
                None => Error::backend(BACKEND, false, "a condition failed without a condition"),
            },
            Refusal::Mismatch(index, actual) => {
                let write = &writes[index];
                Error::conflict(write.category.clone(), write.id, write.expected, actual)
            }
            Refusal::Failed(Failure::Unique(constraint)) if constraint == EVENT_ID_KEY => {
                Error::duplicate_event(batches[0].event_ids[0])
            }
            Refusal::Failed(Failure::Unique(constraint)) if constraint == STREAM_VERSION_KEY => {
                // Another writer took a version first: name a stream that moved.
                for write in writes {
                    let actual = self
                        .stream_version(&self.inner.pool, &write.category, write.id)
                        .await?;
                    if !write.expected.matches(actual) {
                        return Ok(Some(Error::conflict(
                            write.category.clone(),
                            write.id,
                            write.expected,
                            actual,
                        )));
                    }
                }
                return Ok(None);
            }
            Refusal::Failed(Failure::Unique(constraint)) => Error::backend(
                BACKEND,
                false,
                format!("unexpected unique violation of {constraint}"),
            ),
            Refusal::Failed(Failure::Other(error)) => return self.explain(Err(error)).await,
        }))
    }

    /// The pages of a query's answer, each its own statement.
    fn query_pages(
        &self,
        built: Built,
        after: i64,
        until: i64,
    ) -> impl Stream<Item = Result<Envelope, Error>> + Send + '_ {
        async_stream::stream! {
            let mut cursor = after;
            loop {
                let rows = built
                    .bind(cursor, until, self.page_size())
                    .fetch_all(&self.inner.pool)
                    .await;
                let rows = match self.explain(rows.map_err(backend)).await {
                    Ok(rows) => rows,
                    Err(error) => {
                        yield Err(error);
                        return;
                    }
                };
                let full = rows.len() as i64 == self.page_size();
                for row in &rows {
                    match row_position(row) {
                        Ok(position) => cursor = position,
                        Err(error) => {
                            yield Err(error);
                            return;
                        }
                    }
                    yield envelope(row);
                }
                if !full {
                    return;
                }
            }
        }
    }

    /// One try: locks, check, writes, commit.
    async fn try_append_if(
        &self,
        writes: &[Write],
        batches: &[Batch<'_>],
        condition: Option<&Condition>,
    ) -> Result<Vec<Appended>, Refusal> {
        // The check must see what committed while this transaction waited for its
        // locks: READ COMMITTED, whatever the server's default.
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        let (all, keys, exclusive) = self.condition_locks(batches, condition);
        // The writer lock first, then the tag locks in key order, in one round trip: the
        // writer lock is a materialized CTE the join scans before any row (and so any
        // tag lock of the select list) comes out. Without tag locks the join would have
        // no row to scan it for, so the writer lock is then a statement of its own.
        let locks = if keys.is_empty() {
            "SELECT CASE WHEN $3 THEN pg_advisory_xact_lock($4, $5)::text
                         ELSE pg_advisory_xact_lock_shared($4, $5)::text END,
                    cardinality($1::bigint[]) + cardinality($2::bool[])"
        } else {
            "WITH writer AS MATERIALIZED (
                SELECT CASE WHEN $3 THEN pg_advisory_xact_lock($4, $5)::text
                            ELSE pg_advisory_xact_lock_shared($4, $5)::text END AS w
             )
             SELECT count(CASE WHEN t.x THEN pg_advisory_xact_lock(t.k)::text
                               ELSE pg_advisory_xact_lock_shared(t.k)::text END)
             FROM writer, unnest($1::bigint[], $2::bool[]) AS t(k, x)"
        };
        sqlx::query(locks)
            .bind(&keys)
            .bind(&exclusive)
            .bind(all)
            .bind(LOCK_CLASS)
            .bind(self.inner.sql.writer_key)
            .execute(&mut *tx)
            .await?;
        if let Some(condition) = condition {
            let built = first_statement(&self.inner.sql.schema, &condition.query);
            let first: Option<i64> = built
                .bind(to_i64(condition.after.get()), i64::MAX, 1)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| sqlx::Row::try_get(&row, 0))?;
            if let Some(position) = first {
                return Err(Refusal::Condition(position));
            }
        }
        let mut appended = Vec::with_capacity(writes.len());
        for (index, (write, batch)) in writes.iter().zip(batches).enumerate() {
            let outcome = self
                .append(
                    &mut tx,
                    &write.category,
                    write.id,
                    write.expected,
                    batch,
                    false,
                )
                .await?;
            match outcome {
                Outcome::Stored(stored) => appended.push(stored),
                Outcome::Mismatch(actual) => return Err(Refusal::Mismatch(index, actual)),
            }
        }
        tx.commit().await?;
        Ok(appended)
    }

    /// The locks a conditional append takes: whether it needs the writer lock
    /// exclusively (an item without tags), and the tag lock keys in order, each with
    /// whether it is taken exclusively (a tag the condition names).
    fn condition_locks(
        &self,
        batches: &[Batch<'_>],
        condition: Option<&Condition>,
    ) -> (bool, Vec<i64>, Vec<bool>) {
        let mut all = false;
        let mut named = Vec::new();
        for item in condition
            .map(|c| c.query.items.as_slice())
            .unwrap_or_default()
        {
            match item.tags.first() {
                Some(tag) => named.push(tag.as_str()),
                None => all = true,
            }
        }
        let exclusive_keys = self.tag_keys(&named);
        let carried: Vec<&str> = batches
            .iter()
            .flat_map(|batch| batch.distinct_tags.iter().copied())
            .collect();
        let mut keys = self.tag_keys(&carried);
        keys.extend(&exclusive_keys);
        keys.sort_unstable();
        keys.dedup();
        let exclusive = keys
            .iter()
            .map(|key| exclusive_keys.binary_search(key).is_ok())
            .collect();
        (all, keys, exclusive)
    }

    /// If the writes' ids are stored: the original outcomes when every write is a retry
    /// of what stored its events, `DuplicateEvent` for any other reuse.
    async fn retried_writes(
        &self,
        writes: &[Write],
        batches: &[Batch<'_>],
    ) -> Result<Option<Vec<Appended>>, Error> {
        let mut originals = Vec::with_capacity(writes.len());
        for (write, batch) in writes.iter().zip(batches) {
            originals.push(self.retried(&write.category, write.id, batch).await?);
        }
        writes_outcome(writes, originals)
    }
}
