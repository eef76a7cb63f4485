//! The tables, their migrations, and every statement, built once per schema.
//!
//! The schema name is validated before it gets here (letters, digits, `_`, `-`) and is
//! always used double-quoted; every value is a bound parameter.

use std::sync::Arc;

use esrc_core::Error;
use sqlx::{AssertSqlSafe, PgPool};

use crate::error::backend;

/// How many low bits of a position number the events of one transaction.
pub(crate) const TX_SHIFT: u32 = 20;

/// The class of esrc's transaction-scoped advisory locks (`esrc` in ASCII). A writer
/// holds its store's writer lock `(LOCK_CLASS, writer_key(schema))` shared from before
/// its transaction has an id until it ends, so that readers can tell esrc's in-flight
/// appends from other transactions.
pub(crate) const LOCK_CLASS: i32 = 0x6573_7263;
/// The key of the one writer lock of builds before migration 4, shared by every store
/// of a database. Readers still count its holders: a process of such a build may write.
pub(crate) const OLD_WRITER_LOCK: i32 = 1;

/// The advisory lock key of `tag` in `schema`: 64-bit FNV-1a of both, the same in every
/// process and every version of esrc (a collision only makes two writers wait for each
/// other).
pub(crate) fn lock_key(schema: &str, tag: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in schema.bytes().chain([0]).chain(tag.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The key of the writer lock of the store in `schema`: a hash of its name, the same in
/// every process (a collision only makes the writers of two stores wait for each other,
/// as all did before migration 4).
pub(crate) fn writer_key(schema: &str) -> i32 {
    // Tags are never empty: this key is no tag's.
    let hash = lock_key(schema, "").to_ne_bytes();
    let folded = u32::from_ne_bytes([hash[0], hash[1], hash[2], hash[3]])
        ^ u32::from_ne_bytes([hash[4], hash[5], hash[6], hash[7]]);
    // Positive (pg_locks shows it as an oid), and never the old key.
    match i32::try_from(folded & 0x7fff_ffff).unwrap_or(i32::MAX) {
        OLD_WRITER_LOCK => OLD_WRITER_LOCK + 1,
        key => key,
    }
}

/// The columns every read selects, in the order `store::envelope` decodes them.
/// `created_at` and `metadata` are read in their binary forms and converted by the client
/// (see `store::envelope`): converting them in SQL costs the server more than the read.
pub(crate) const COLUMNS: &str = "category, aggregate_id, version, position, event_id, created_at, \
    schema_version, correlation_id, causation_id, metadata, payload, event_type, tags";

/// The schema's migrations, in order. Each runs once, in a transaction.
fn migrations(schema: &str, s: &str) -> Vec<String> {
    vec![
        format!(
            r#"
        CREATE TABLE {s}.events (
            position        bigint      NOT NULL,
            category        text        NOT NULL,
            aggregate_id    uuid        NOT NULL,
            version         bigint      NOT NULL,
            event_id        uuid        NOT NULL,
            created_at      timestamptz NOT NULL,
            schema_version  integer     NOT NULL,
            correlation_id  uuid,
            causation_id    uuid,
            metadata        jsonb,
            payload         bytea       NOT NULL,
            CONSTRAINT events_pkey PRIMARY KEY (position),
            CONSTRAINT events_stream_version_key UNIQUE (category, aggregate_id, version),
            CONSTRAINT events_event_id_key UNIQUE (event_id)
        );
        CREATE INDEX events_category_position ON {s}.events (category, position);
        CREATE TABLE {s}.truncations (
            category      text   NOT NULL,
            aggregate_id  uuid   NOT NULL,
            version       bigint NOT NULL,
            PRIMARY KEY (category, aggregate_id)
        );
        CREATE TABLE {s}.snapshots (
            category        text    NOT NULL,
            aggregate_id    uuid    NOT NULL,
            version         bigint  NOT NULL,
            position        bigint  NOT NULL,
            schema_version  integer NOT NULL,
            payload         bytea   NOT NULL,
            PRIMARY KEY (category, aggregate_id)
        );
        CREATE TABLE {s}.checkpoints (
            name      text   PRIMARY KEY,
            position  bigint NOT NULL
        );
        "#
        ),
        format!(
            "CREATE TABLE {s}.late_ids (n integer);\n{}",
            base_function(s, "position_base", OLD_WRITER_LOCK)
        ),
        types_and_tags(s),
        writer_lock_per_store(s, writer_key(schema)),
    ]
}

/// Migration 3: every event's type (its variant's name; empty for the events stored
/// before), its tags (NULL when it has none), and the index tables that make a query
/// proportional to its answer: `event_tags` (one row per tag of an event, a B-tree on
/// `(tag, position)`) and `(category, event_type, position)`. Adding the columns
/// rewrites nothing (a constant default); the index on types reads the table once.
fn types_and_tags(s: &str) -> String {
    format!(
        r#"
        ALTER TABLE {s}.events
            ADD COLUMN event_type text NOT NULL DEFAULT '',
            ADD COLUMN tags text[];
        CREATE TABLE {s}.event_tags (
            tag       text   NOT NULL,
            position  bigint NOT NULL,
            PRIMARY KEY (tag, position)
        );
        CREATE INDEX events_type_position ON {s}.events (event_type, category, position);
        "#
    )
}

/// Migration 4: the writer lock of each store its own. Until now every writer of every
/// store of the database held one lock: a conditional append on an item without tags,
/// which takes it exclusively, waited for the open appends of every store, and readers
/// waited for other stores' open transactions. `append_base` is [`base_function`] with
/// the store's key; `position_base` (what builds before it call) now calls it.
fn writer_lock_per_store(s: &str, key: i32) -> String {
    format!(
        "{}
        CREATE OR REPLACE FUNCTION {s}.position_base() RETURNS bigint
        LANGUAGE sql VOLATILE AS $esrc$ SELECT {s}.append_base() $esrc$;",
        base_function(s, "append_base", key)
    )
}

/// The function every append in a caller's transaction takes its positions from:
/// `position_base` (migration 2, with the lock every store shared) and `append_base`
/// (migration 4, with the store's own writer lock `key`).
///
/// Readers must know which running transactions may still store events. A writer takes
/// the shared writer lock *before* its transaction has an id, so a running transaction
/// that does not hold the lock cannot later store events at positions made from its id
/// (see [`horizon`]). The first append of a transaction takes the lock and the positions
/// `xid << 20`; later appends of the same transaction reuse them (a transaction-local
/// setting remembers).
///
/// A *late* transaction is one that had an id before its first append (a caller's
/// transaction that wrote something else first, through `publish_in`): a reader may have
/// passed its id while it did not hold the lock. It takes the lock, then a fresh id, a
/// subtransaction's (one row written and removed in `late_ids`), and numbers its events
/// from that: the new id is above every horizon computed before the lock was taken, it
/// belongs to no other transaction, and it completes when the transaction commits.
fn base_function(s: &str, name: &str, key: i32) -> String {
    format!(
        r#"
        CREATE FUNCTION {s}.{name}() RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $esrc$
        DECLARE
            base bigint;
            top bigint;
            sub bigint;
            place tid;
        BEGIN
            base := nullif(current_setting('esrc.base', true), '')::bigint;
            IF base IS NOT NULL THEN
                RETURN base;
            END IF;
            IF pg_current_xact_id_if_assigned() IS NULL THEN
                PERFORM pg_advisory_xact_lock_shared({LOCK_CLASS}, {key});
                base := pg_current_xact_id()::text::bigint << {TX_SHIFT};
            ELSE
                PERFORM pg_advisory_xact_lock_shared({LOCK_CLASS}, {key});
                top := pg_current_xact_id()::text::bigint;
                BEGIN
                    INSERT INTO {s}.late_ids VALUES (0) RETURNING ctid, xmin::text::bigint
                        INTO place, sub;
                    DELETE FROM {s}.late_ids WHERE ctid = place;
                EXCEPTION WHEN OTHERS THEN
                    RAISE;
                END;
                -- The subtransaction's id, with the epoch of the transaction's own.
                sub := top + ((sub - (top & 4294967295)) & 4294967295);
                base := sub << {TX_SHIFT};
            END IF;
            PERFORM set_config('esrc.base', base::text, true);
            RETURN base;
        END
        $esrc$;
        "#
    )
}

/// The planner settings of long page reads (replays, subscriptions catching up), set for
/// their transaction only. Before the server has analyzed a table that grew fast (a new
/// category, a fresh store), it guessed a category's remaining events to be a few and
/// chose to fetch them all and sort them for every page: a replay of n events cost n²
/// (measured: 40 ms a page of 1,000 on a store of 10⁵ events, against 0.3 ms). With
/// sorts off, the one sort left (merging the categories) is costed so high that the
/// server would compile the statement (JIT, 50 ms a call): off too.
pub(crate) const PAGE_SETTINGS: &str =
    "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; SET LOCAL jit = off";

/// The reader's horizon and the head: `(horizon, head, blocker)`.
///
/// Every row below the horizon is final, provided the rows are read by a *later*
/// statement: the horizon is the lowest id among the running transactions (in this
/// statement's snapshot) that hold the writer lock (read after the snapshot), or the
/// snapshot's `xmax`. A running transaction without the lock cannot store events below
/// it (it would be late, see [`base_function`]); one that held the lock at the snapshot
/// and released it before the lock table was read has committed, and a later statement
/// sees its rows. When no transaction at all holds the horizon below the head, the
/// lock table is not read. `blocker` is the transaction id holding the horizon, if any.
fn horizon(s: &str, key: i32) -> String {
    format!(
        "WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
        head AS MATERIALIZED (SELECT max(position) AS head FROM {s}.events),
        plain AS (
            SELECT pg_snapshot_xmin(s)::text::bigint AS xmin,
                   pg_snapshot_xmax(s)::text::bigint AS xmax, s
            FROM snap
        ),
        locks AS MATERIALIZED (
            SELECT locktype, virtualtransaction, transactionid, classid, objid, objsubid
            FROM pg_locks
            WHERE granted AND locktype IN ('advisory', 'transactionid')
              AND (SELECT head FROM head) >= (SELECT xmin FROM plain) << {TX_SHIFT}
        ),
        writers AS (
            SELECT t.transactionid::text::bigint AS xid
            FROM locks a JOIN locks t ON t.virtualtransaction = a.virtualtransaction
            WHERE a.locktype = 'advisory' AND a.classid = {LOCK_CLASS}
              AND a.objid IN ({key}, {OLD_WRITER_LOCK}) AND a.objsubid = 2
              AND t.locktype = 'transactionid'
        ),
        blocker AS (
            SELECT min(x::text::bigint) AS xid
            FROM plain, pg_snapshot_xip(plain.s) AS x
            WHERE (x::text::bigint & 4294967295) IN (SELECT xid FROM writers)
        )
        SELECT CASE
                WHEN head IS NULL OR head < xmin << {TX_SHIFT} THEN xmin << {TX_SHIFT}
                ELSE coalesce(blocker.xid, xmax) << {TX_SHIFT}
            END,
            head, blocker.xid
        FROM plain, head, blocker"
    )
}

/// Every statement of a store, for one schema.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) schema: String,
    pub(crate) channel: String,
    /// The key of the store's writer lock (see [`writer_key`]).
    pub(crate) writer_key: i32,
    quoted: String,
    /// The append of any expectation, alone in its transaction.
    pub(crate) append: Arc<str>,
    /// The same in a caller's transaction, which may have written before.
    pub(crate) append_in: Arc<str>,
    /// The append of a new stream: one event's values, then arrays of events.
    pub(crate) append_new: [Arc<str>; 2],
    /// The append after an expected version, in the same two forms.
    pub(crate) append_checked: [Arc<str>; 2],
    /// The append after a version the store has seen stored, unguarded, in the same forms.
    pub(crate) append_seen: [Arc<str>; 2],
    pub(crate) stream_version: Arc<str>,
    pub(crate) find_ids: Arc<str>,
    pub(crate) count_in_tx: Arc<str>,
    pub(crate) replay_one: Arc<str>,
    /// A page of a group's events between two positions.
    pub(crate) page: Arc<str>,
    /// The readers' horizon, the head and the transaction holding the horizon back.
    pub(crate) horizon: Arc<str>,
    /// The session of a transaction id: what a warning about a held horizon names.
    pub(crate) blocker: Arc<str>,
    pub(crate) head: Arc<str>,
    pub(crate) count_after: Arc<str>,
    pub(crate) categories: Arc<str>,
    pub(crate) truncate: Arc<str>,
    pub(crate) snapshot: SnapshotSql,
    pub(crate) checkpoint: CheckpointSql,
}

/// The statements of snapshots.
#[derive(Debug)]
pub(crate) struct SnapshotSql {
    pub(crate) save_snapshot: Arc<str>,
    pub(crate) load_snapshot: Arc<str>,
    pub(crate) snapshot_then_events: Arc<str>,
}

impl SnapshotSql {
    fn new(s: &str) -> Self {
        Self {
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots
                (category, aggregate_id, version, position, schema_version, payload)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (category, aggregate_id) DO UPDATE SET
                version = EXCLUDED.version, position = EXCLUDED.position,
                schema_version = EXCLUDED.schema_version, payload = EXCLUDED.payload
             WHERE {s}.snapshots.version <= EXCLUDED.version"
            )
            .into(),
            load_snapshot: format!(
                "SELECT version, position, schema_version, payload FROM {s}.snapshots
             WHERE category = $1 AND aggregate_id = $2"
            )
            .into(),
            // The snapshot's row has the events' columns (those it lacks are null) and is
            // flagged in a fourteenth; its version sorts it before the events after it. At
            // most $3 events: the sort of a long stream's rows costs more than the read.
            snapshot_then_events: format!(
                "WITH snapshot AS (
                 SELECT version, position, schema_version, payload FROM {s}.snapshots
                 WHERE category = $1 AND aggregate_id = $2
             )
             SELECT $1::text, $2::uuid, version, position, NULL::uuid, NULL::timestamptz,
                    schema_version, NULL::uuid, NULL::uuid, NULL::jsonb, payload, NULL::text,
                    NULL::text[], true
             FROM snapshot
             UNION ALL
             (SELECT {COLUMNS}, false FROM {s}.events
              WHERE category = $1 AND aggregate_id = $2
                AND version > coalesce((SELECT version FROM snapshot), 0)
              ORDER BY version LIMIT $3)
             ORDER BY 3"
            )
            .into(),
        }
    }
}

/// The statements of checkpoints.
#[derive(Debug)]
pub(crate) struct CheckpointSql {
    pub(crate) save_checkpoint: Arc<str>,
    pub(crate) load_checkpoint: Arc<str>,
    pub(crate) checkpoints: Arc<str>,
    pub(crate) set_checkpoint: Arc<str>,
    pub(crate) delete_checkpoint: Arc<str>,
}

impl CheckpointSql {
    fn new(s: &str) -> Self {
        Self {
            save_checkpoint: format!(
                "INSERT INTO {s}.checkpoints (name, position) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE
             SET position = greatest({s}.checkpoints.position, EXCLUDED.position)"
            )
            .into(),
            load_checkpoint: format!("SELECT position FROM {s}.checkpoints WHERE name = $1").into(),
            checkpoints: format!("SELECT name, position FROM {s}.checkpoints ORDER BY name").into(),
            set_checkpoint: format!(
                "INSERT INTO {s}.checkpoints (name, position) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position"
            )
            .into(),
            delete_checkpoint: format!("DELETE FROM {s}.checkpoints WHERE name = $1").into(),
        }
    }
}

/// The version of the stream `($1, $2)`: its last event's, or the one its truncation
/// kept.
fn current_version(s: &str) -> String {
    format!(
        "coalesce(
            (SELECT max(version) FROM {s}.events WHERE category = $1 AND aggregate_id = $2),
            (SELECT version FROM {s}.truncations WHERE category = $1 AND aggregate_id = $2),
            0)"
    )
}

/// The append of any expectation, in any transaction: the version checked in the same
/// statement, positions taken from the transaction id.
fn append(s: &str, current_version: &str, base: &str) -> String {
    format!(
        "WITH cur AS (SELECT {current_version} AS version),
        {base},
        keys AS MATERIALIZED (
            SELECT count(pg_advisory_xact_lock_shared(k)) FROM tx, unnest($13::bigint[]) AS k
        ),
        start AS (
            SELECT coalesce(max(e.position) + 1, tx.low) AS position
            FROM tx LEFT JOIN {s}.events e
                ON e.position >= tx.low AND e.position < tx.low + (1::bigint << {TX_SHIFT})
            GROUP BY tx.low
        ),
        ins AS (
            INSERT INTO {s}.events (position, category, aggregate_id, version, event_id,
                created_at, schema_version, correlation_id, causation_id, metadata, payload,
                event_type, tags)
            SELECT start.position + b.n - 1, $1, $2, cur.version + b.n, b.event_id,
                timestamptz 'epoch' + b.micros * interval '1 microsecond', b.schema_version,
                b.correlation_id, b.causation_id, b.metadata::jsonb, b.payload,
                b.event_type, string_to_array(b.tags, E'\\n')
            FROM unnest($4::uuid[], $5::bigint[], $6::int[], $7::uuid[], $8::uuid[],
                    $9::text[], $10::bytea[], $11::text[], $12::text[])
                WITH ORDINALITY AS b(event_id, micros, schema_version, correlation_id,
                    causation_id, metadata, payload, event_type, tags, n),
                cur, start, keys
            WHERE $3::bigint IS NULL OR cur.version = $3
            RETURNING version, position, tags
        ),
        tagged AS (
            INSERT INTO {s}.event_tags (tag, position)
            SELECT unnest(tags), position FROM ins WHERE tags IS NOT NULL
        )
        SELECT (SELECT version FROM cur), max(version), max(position) FROM ins"
    )
}

/// The positions of an append alone in its transaction (a statement of its own, so its
/// transaction has no id yet): the writer lock, *then* the transaction id — what
/// `append_base` does in its first branch, without the function call. The `tx` CTE
/// scans `lock`, so the lock is held before `pg_current_xact_id()` runs.
fn alone_base(key: i32) -> String {
    format!(
        "lock AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared({LOCK_CLASS}, {key})),
        tx AS MATERIALIZED (
            SELECT pg_current_xact_id()::text::bigint << {TX_SHIFT} AS low FROM lock)"
    )
}

/// The appends alone in their transaction with an expected version: of a new stream, of
/// a stream at a version, and after a version this store has seen stored.
fn append_forms(s: &str, key: i32) -> [[Arc<str>; 2]; 3] {
    // The common append, alone in its transaction with an expected version: one plain
    // INSERT. The unique (category, aggregate id, version) constraint rejects a stream
    // that moved past the expectation; the guard rejects one that is not there yet.
    // A new stream and a stream at a version have a statement each: one statement
    // with a `CASE` on the version was planned anew on every call (the plan for known
    // parameters always looked cheaper than the generic one), 50 µs an append. A
    // third has no guard, for a version this store has seen stored: versions never
    // go back (truncation records the version it removed), so the guard would hold.
    // Each comes in two forms: the events' columns as arrays, or one event's as
    // values.
    let alone_base = alone_base(key);
    let insert = |rows: &str| {
        format!(
            "WITH {alone_base}
            INSERT INTO {s}.events (position, category, aggregate_id, version, event_id,
                created_at, schema_version, correlation_id, causation_id, metadata, payload,
                event_type)
            SELECT tx.low + b.n - 1, $1, $2,
                $3 + b.n, b.event_id, timestamptz 'epoch' + b.micros * interval '1 microsecond',
                b.schema_version, b.correlation_id, b.causation_id, b.metadata::jsonb, b.payload,
                b.event_type
            FROM tx, {rows} AS b(event_id, micros, schema_version, correlation_id, causation_id,
                metadata, payload, event_type, n)"
        )
    };
    let forms = [
        "(VALUES ($4::uuid, $5::bigint, $6::int, $7::uuid, $8::uuid, $9::text, $10::bytea,
            $11::text, 1::bigint))",
        "unnest($4::uuid[], $5::bigint[], $6::int[], $7::uuid[], $8::uuid[], $9::text[],
            $10::bytea[], $11::text[]) WITH ORDINALITY",
    ];
    [
        format!(
            "WHERE $3::bigint = 0 AND NOT EXISTS (
                SELECT 1 FROM {s}.truncations t WHERE t.category = $1 AND t.aggregate_id = $2)"
        ),
        format!(
            "WHERE EXISTS (
                SELECT 1 FROM {s}.events e
                WHERE e.category = $1 AND e.aggregate_id = $2 AND e.version = $3)
            OR EXISTS (
                SELECT 1 FROM {s}.truncations t
                WHERE t.category = $1 AND t.aggregate_id = $2 AND t.version = $3)"
        ),
        // No guard: the store has seen the expected version stored (see `seen`).
        String::new(),
    ]
    .map(|guard| {
        forms.map(|rows| {
            Arc::from(format!(
                "{}\n{guard}\nRETURNING version, position",
                insert(rows)
            ))
        })
    })
}

/// Drops the events of a stream before a version, recording the stream's version.
fn truncate(s: &str) -> String {
    format!(
        "WITH cur AS (
        SELECT coalesce(max(version), 0) AS version FROM {s}.events
        WHERE category = $1 AND aggregate_id = $2
    ),
    gone AS (
        DELETE FROM {s}.events
        WHERE category = $1 AND aggregate_id = $2 AND version < $3
        RETURNING position, tags
    ),
    untagged AS (
        DELETE FROM {s}.event_tags t USING gone
        WHERE gone.tags IS NOT NULL AND t.tag = ANY(gone.tags) AND t.position = gone.position
    )
    INSERT INTO {s}.truncations (category, aggregate_id, version)
    SELECT $1, $2, version FROM cur WHERE version > 0
    ON CONFLICT (category, aggregate_id)
    DO UPDATE SET version = greatest({s}.truncations.version, EXCLUDED.version)"
    )
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let current_version = current_version(&s);
        let writer_key = writer_key(schema);
        let [append_new, append_checked, append_seen] = append_forms(&s, writer_key);
        Self {
            schema: schema.to_owned(),
            writer_key,
            channel: format!("esrc_{schema}"),
            append: append(&s, &current_version, &alone_base(writer_key)).into(),
            append_in: append(
                &s,
                &current_version,
                &format!("tx AS MATERIALIZED (SELECT {s}.append_base() AS low)"),
            )
            .into(),
            append_new,
            append_checked,
            append_seen,
            stream_version: format!("SELECT {current_version}").into(),
            find_ids: format!(
                "SELECT event_id, category, aggregate_id, version, position
                 FROM {s}.events WHERE event_id = ANY($1)"
            )
            .into(),
            count_in_tx: format!(
                "SELECT count(*) FROM {s}.events WHERE category = $1 AND aggregate_id = $2
                 AND position >= $3 AND position < $4"
            )
            .into(),
            replay_one: format!(
                "SELECT {COLUMNS} FROM {s}.events
                 WHERE category = $1 AND aggregate_id = $2 AND version > $3
                 ORDER BY version"
            )
            .into(),
            // Each category through its own ordered scan of `(category, position)` that
            // stops at the page's end, then merged; no upper bound (the caller drops the
            // rows at or above its horizon). Long reads run it with bitmap scans and
            // sorts off (see `PAGE_SETTINGS`).
            page: format!(
                "SELECT {COLUMNS} FROM unnest($2::text[]) AS c(name)
                 CROSS JOIN LATERAL (
                    SELECT {COLUMNS} FROM {s}.events
                    WHERE category = c.name AND position > $1
                    ORDER BY position LIMIT $3
                 ) AS e
                 ORDER BY position LIMIT $3"
            )
            .into(),
            horizon: horizon(&s, writer_key).into(),
            blocker: Arc::from(
                "SELECT pid, extract(epoch FROM now() - xact_start)::float8,
                        extract(epoch FROM now() - query_start)::float8,
                        coalesce(state, ''), coalesce(application_name, '')
                 FROM pg_stat_activity WHERE backend_xid::text::bigint = $1 & 4294967295",
            ),
            head: format!(
                "SELECT coalesce(max(position), 0) FROM {s}.events WHERE category = ANY($1)"
            )
            .into(),
            count_after: format!(
                "SELECT count(*) FROM {s}.events WHERE category = ANY($1) AND position > $2"
            )
            .into(),
            categories: format!(
                "SELECT category, count(*), count(DISTINCT aggregate_id) FROM {s}.events
                 GROUP BY category ORDER BY category"
            )
            .into(),
            truncate: truncate(&s).into(),
            snapshot: SnapshotSql::new(&s),
            checkpoint: CheckpointSql::new(&s),
            quoted: s,
        }
    }

    /// Creates the schema and applies the migrations it lacks, under an advisory lock so
    /// that several processes may run it at once.
    pub(crate) async fn migrate(&self, pool: &PgPool) -> Result<(), Error> {
        let s = &self.quoted;
        let mut tx = pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('esrc.migrate'), hashtext($1))")
            .bind(&self.schema)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let setup = format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.migrations (
                version     integer     PRIMARY KEY,
                applied_at  timestamptz NOT NULL DEFAULT now()
             )"
        );
        sqlx::raw_sql(AssertSqlSafe(setup))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let applied: i32 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT coalesce(max(version), 0) FROM {s}.migrations"
        )))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        for (version, migration) in (1..).zip(migrations(&self.schema, s)) {
            if version <= applied {
                continue;
            }
            tracing::info!(schema = %self.schema, version, "applying esrc migration");
            sqlx::raw_sql(AssertSqlSafe(migration))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {s}.migrations (version) VALUES ($1)"
            )))
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}
