//! W9: decisions across streams. Conditional appends per second (one writer, 16 writers
//! on disjoint tags, 16 writers on one tag) beside plain appends in the same run, and a
//! tag query's time on a store of 10⁶ events against 10⁴. On PostgreSQL also the same
//! tag query through a GIN index on the `tags` array, against the B-tree tag table.

use std::time::{Duration, Instant};

use esrc_core::{
    Condition, Decide, DecideExt, Error, Expected, Item, NewEvent, Position, Query, Store, Tag,
    Write,
};
use futures::StreamExt;
use uuid::Uuid;

use crate::BoxError;
use crate::report::Line;

/// How big W9 is.
#[derive(Clone, Copy, Debug)]
pub struct DecisionSizes {
    /// Conditional appends timed per writer count.
    pub appends: u64,
    /// The two store sizes the tag query is timed at.
    pub crowd: [u64; 2],
    /// Tag queries timed at each size.
    pub queries: u64,
}

impl DecisionSizes {
    /// The full run.
    pub const FULL: DecisionSizes = DecisionSizes {
        appends: 2_000,
        crowd: [10_000, 1_000_000],
        queries: 200,
    };
    /// `--quick`.
    pub const QUICK: DecisionSizes = DecisionSizes {
        appends: 300,
        crowd: [1_000, 100_000],
        queries: 50,
    };
    /// The smoke test.
    pub const TINY: DecisionSizes = DecisionSizes {
        appends: 16,
        crowd: [100, 300],
        queries: 3,
    };
}

const CATEGORY: &str = "Seat";
const WRITERS: u64 = 16;

fn tag(key: &str, value: impl std::fmt::Display) -> Result<Tag, Error> {
    Tag::from_parts(key, value)
}

fn event(tags: impl IntoIterator<Item = Tag>) -> NewEvent {
    NewEvent::from_payload(1, &br#"{"seat":1}"#[..])
        .with_type("Taken")
        .with_tags(tags)
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// One conditional append: reads the tag's events up to the horizon, then appends one
/// event tagged with it on the condition that none was added since. Returns whether it
/// stored (false: a conflict).
async fn decide_once<S: Decide>(store: &S, course: &str) -> Result<bool, BoxError> {
    let course = tag("course", course)?;
    let query = Query::new().or(Item::new().tagged(course.clone()));
    let (until, events) = store.read_query(&query, Position::ZERO).await?;
    // What a decision folds: here, only how many there are.
    events.count().await;
    let write = Write::new(CATEGORY, Uuid::now_v7(), vec![event([course])]);
    let condition = Condition::new(query).after(until);
    match store.append_if(vec![write], Some(condition)).await {
        Ok(_) => Ok(true),
        Err(error) if error.is_conflict() => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// `writers` tasks making `total` conditional appends between them, each on its own
/// tag (`shared` = false) or all on one (`shared` = true). Returns the time and the
/// number of conflicts.
async fn conditional<S: Store + Clone + 'static>(
    store: &S,
    writers: u64,
    total: u64,
    shared: bool,
) -> Result<(Duration, u64), BoxError> {
    let run = Uuid::now_v7().simple().to_string();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for n in 0..total / writers {
                let course = match shared {
                    true => format!("{run}-shared"),
                    false => format!("{run}-{writer}-{n}"),
                };
                // A conflict is decided again, as `decide` would.
                while !decide_once(&store, &course).await? {
                    conflicts += 1;
                }
            }
            Ok::<_, BoxError>(conflicts)
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await??;
    }
    Ok((started.elapsed(), conflicts))
}

/// Plain appends of one tagged event to a new stream each, by `writers` tasks.
async fn plain<S: Store + Clone + 'static>(
    store: &S,
    writers: u64,
    total: u64,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..total / writers {
                let event = event([tag("course", format!("plain-{writer}-{n}"))?]);
                store
                    .publish(CATEGORY, Uuid::now_v7(), Expected::NoStream, vec![event])
                    .await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// Fills the store up to `size` events, each with a tag of its own, in appends of 500
/// (on NATS each tag is one more message of the batch, which holds at most 1,000).
async fn fill<S: Decide>(store: &S, from: u64, size: u64) -> Result<(), BoxError> {
    let mut n = from;
    while n < size {
        let count = (size - n).min(500);
        let events = (n..n + count)
            .map(|i| Ok(event([tag("item", i)?])))
            .collect::<Result<Vec<_>, Error>>()?;
        store
            .append_if(vec![Write::new("Crowd", Uuid::now_v7(), events)], None)
            .await?;
        n += count;
    }
    Ok(())
}

/// The mean time of reading the 10 events tagged `target`.
async fn time_query<S: Decide>(store: &S, target: &Tag, reads: u64) -> Result<Duration, BoxError> {
    let query = Query::new().or(Item::new().tagged(target.clone()));
    let started = Instant::now();
    for _ in 0..reads {
        let (_, events) = store.read_query(&query, Position::ZERO).await?;
        let found = events
            .filter(|event| std::future::ready(event.is_ok()))
            .count()
            .await;
        if found != 10 {
            return Err(format!("the tag query found {found} events, not 10").into());
        }
    }
    Ok(started.elapsed() / reads.max(1) as u32)
}

/// W9 on `store`: nothing (one informative line) if the store does not offer decisions.
pub async fn w9<S: Store + Clone + 'static>(
    store: &S,
    sizes: DecisionSizes,
) -> Result<Vec<Line>, BoxError> {
    if let Err(error) = store.horizon().await {
        if matches!(error, Error::NotSupported { .. }) {
            return Ok(vec![Line {
                workload: "W9 decisions across streams".into(),
                unit: "-".into(),
                esrc: 0.0,
                raw: None,
                ratio: None,
                target: "not supported by this store".into(),
                met: true,
            }]);
        }
        return Err(error.into());
    }
    let mut lines = Vec::new();
    let plain_one = rate(sizes.appends, plain(store, 1, sizes.appends).await?);
    let plain_many = rate(sizes.appends, plain(store, WRITERS, sizes.appends).await?);
    for (label, writers, shared, baseline) in [
        ("1 writer, disjoint tags", 1, false, plain_one),
        ("16 writers, disjoint tags", WRITERS, false, plain_many),
        ("16 writers, one tag", WRITERS, true, plain_many),
    ] {
        let (elapsed, conflicts) = conditional(store, writers, sizes.appends, shared).await?;
        let stored = (sizes.appends / writers) * writers;
        let esrc = rate(stored, elapsed);
        lines.push(Line {
            workload: format!("W9 read + conditional append, {label}"),
            unit: "appends/s".into(),
            esrc,
            raw: Some(baseline),
            ratio: Some(esrc / baseline),
            target: "informative (vs plain appends)".into(),
            met: true,
        });
        if shared {
            lines.push(Line {
                workload: format!("W9 conflicts decided again, {label}"),
                unit: "per append".into(),
                esrc: conflicts as f64 / stored.max(1) as f64,
                raw: None,
                ratio: None,
                target: "informative".into(),
                met: true,
            });
        }
    }

    lines.extend(tag_query(store, sizes).await?);
    Ok(lines)
}

/// The W9 tag query, timed as the store grows around the 10 events it finds.
async fn tag_query<S: Decide>(store: &S, sizes: DecisionSizes) -> Result<Vec<Line>, BoxError> {
    let mut lines = Vec::new();
    let target = tag("course", format!("target-{}", Uuid::now_v7().simple()))?;
    for _ in 0..10 {
        let write = Write::new(CATEGORY, Uuid::now_v7(), vec![event([target.clone()])]);
        store.append_if(vec![write], None).await?;
    }
    let mut times = Vec::new();
    let mut filled = 0;
    for size in sizes.crowd {
        fill(store, filled, size).await?;
        filled = size;
        let time = time_query(store, &target, sizes.queries).await?;
        lines.push(Line {
            workload: format!("W9 tag query among {size} events"),
            unit: "ms".into(),
            esrc: time.as_secs_f64() * 1e3,
            raw: None,
            ratio: None,
            target: "-".into(),
            met: true,
        });
        times.push(time);
    }
    let ratio = times[1].as_secs_f64() / times[0].as_secs_f64().max(1e-9);
    lines.push(Line {
        workload: format!(
            "W9 tag query time, {} vs {} events",
            sizes.crowd[1], sizes.crowd[0]
        ),
        unit: "ratio".into(),
        esrc: ratio,
        raw: None,
        ratio: Some(ratio),
        target: "<= 1.5".into(),
        met: ratio <= 1.5,
    });
    Ok(lines)
}

/// PostgreSQL: the W9 tag query through the B-tree tag table (what esrc reads) and
/// through a GIN index on the events' `tags` array, on the same rows, in the same run.
pub async fn gin_vs_btree(
    pool: &sqlx::PgPool,
    schema: &str,
    reads: u64,
) -> Result<Vec<Line>, BoxError> {
    let s = format!("\"{schema}\"");
    let target: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT tag FROM {s}.event_tags WHERE tag LIKE 'course:target-%' LIMIT 1"
    )))
    .fetch_one(pool)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX IF NOT EXISTS events_tags_gin ON {s}.events USING gin (tags); ANALYZE {s}.events; ANALYZE {s}.event_tags"
    )))
    .execute(pool)
    .await?;
    let btree = format!(
        "SELECT e.position FROM {s}.event_tags t JOIN {s}.events e ON e.position = t.position
         WHERE t.tag = $1 ORDER BY t.position LIMIT 1000"
    );
    let gin = format!(
        "SELECT position FROM {s}.events WHERE tags @> ARRAY[$1]::text[]
         ORDER BY position LIMIT 1000"
    );
    let mut times = Vec::new();
    for sql in [btree, gin] {
        let started = Instant::now();
        for _ in 0..reads {
            let rows: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&target)
                .fetch_all(pool)
                .await?;
            if rows.len() != 10 {
                return Err(format!("{} rows, not 10", rows.len()).into());
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1e3 / reads.max(1) as f64);
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP INDEX IF EXISTS {s}.events_tags_gin"
    )))
    .execute(pool)
    .await?;
    Ok(vec![Line {
        workload: "W9 tag query: B-tree tag table vs GIN on tags[]".into(),
        unit: "ms".into(),
        esrc: times[0],
        raw: Some(times[1]),
        ratio: Some(times[1] / times[0]),
        target: "informative (GIN time / B-tree time)".into(),
        met: true,
    }])
}
