//! `cargo run --release -p esrc-bench -- --store memory|postgres|nats [--quick] [--only W1,W9] [--json FILE] [--chart FILE]`
//!
//! PostgreSQL and NATS are reached through `ESRC_POSTGRES_URL` and `ESRC_NATS_URL`
//! (or `--url`). Each run works in fresh namespaces and removes them afterwards.

use esrc_bench::BoxError;
use esrc_bench::raw::{RawMemory, RawNats, RawPostgres};
use esrc_bench::report::{self, Line};
use esrc_bench::workloads::{self, Sizes};
use esrc_memory::MemoryStore;
use esrc_nats::NatsStore;
use esrc_postgres::PgStore;
use uuid::Uuid;

const USAGE: &str = "\
esrc-bench: the same workloads on an esrc store and on its raw client, in one run.

Usage: esrc-bench --store memory|postgres|nats [--url URL] [--quick] [--only W1,W9] [--json FILE]
                  [--chart FILE]

--url defaults to ESRC_POSTGRES_URL or ESRC_NATS_URL.
--only runs the workloads named (W1 to W9, `metrics`, what metrics cost, and on NATS
`bytes`, the stored-bytes line, and `layout`, the like-with-like reads); by default all.
--chart names the SVG chart of the run (by default target/esrc-bench/STORE.svg).";

struct Args {
    store: String,
    url: Option<String>,
    quick: bool,
    only: Vec<String>,
    json: Option<String>,
    chart: Option<String>,
}

fn args() -> Result<Args, BoxError> {
    let mut parsed = Args {
        store: String::new(),
        url: None,
        quick: false,
        only: Vec::new(),
        json: None,
        chart: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => parsed.store = args.next().ok_or("--store needs a value")?,
            "--url" => parsed.url = Some(args.next().ok_or("--url needs a value")?),
            "--json" => parsed.json = Some(args.next().ok_or("--json needs a file")?),
            "--chart" => parsed.chart = Some(args.next().ok_or("--chart needs a file")?),
            "--quick" => parsed.quick = true,
            "--only" => {
                let names = args.next().ok_or("--only needs workloads, e.g. W1,W9")?;
                parsed.only = names
                    .split(',')
                    .map(|name| name.trim().to_owned())
                    .collect();
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}").into()),
        }
    }
    if parsed.store.is_empty() {
        return Err(USAGE.into());
    }
    Ok(parsed)
}

fn url(args: &Args, variable: &str) -> Result<String, BoxError> {
    args.url
        .clone()
        .or_else(|| std::env::var(variable).ok())
        .ok_or_else(|| format!("set --url or {variable}").into())
}

/// Writes the run's chart where `--chart` says, or to target/esrc-bench/STORE.svg.
fn chart(args: &Args, lines: &[Line]) -> Result<(), BoxError> {
    let path = match &args.chart {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            let directory = std::path::Path::new("target").join("esrc-bench");
            std::fs::create_dir_all(&directory)?;
            directory.join(format!("{}.svg", args.store))
        }
    };
    esrc_bench::chart::write(&args.store, lines, &path)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let sizes = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let namespace = format!("bench_{}", Uuid::new_v4().simple());
    let only = &args.only;
    let wanted = |name: &str| only.is_empty() || only.iter().any(|w| w.eq_ignore_ascii_case(name));
    let lines: Vec<Line> = match args.store.as_str() {
        "memory" => {
            workloads::run(
                MemoryStore::new(),
                RawMemory::default(),
                sizes,
                10.0,
                None,
                None,
                only,
            )
            .await?
        }
        "postgres" => {
            let url = url(&args, "ESRC_POSTGRES_URL")?;
            let store = PgStore::builder()
                .schema(namespace.clone())
                .max_connections(20)
                .connect(&url)
                .await?;
            store.migrate().await?;
            let raw = RawPostgres::new(store.pool().clone()).await?;
            // The same appends from a store that sends no NOTIFY: what notifying other
            // processes' subscribers costs.
            let silent = PgStore::builder()
                .schema(namespace.clone())
                .notify(false)
                .build(store.pool().clone())?;
            let variant = Some((silent, "without NOTIFY"));
            let lines = workloads::run(store.clone(), raw, sizes, 10.0, variant, None, only).await;
            // The GIN comparison reads W9's tagged events.
            let gin = if wanted("W9") {
                esrc_bench::decisions::gin_vs_btree(
                    store.pool(),
                    &namespace,
                    sizes.decisions.queries,
                )
                .await
            } else {
                Ok(Vec::new())
            };
            let drop = format!("DROP SCHEMA \"{namespace}\" CASCADE");
            sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(store.pool())
                .await?;
            let mut lines = lines?;
            lines.extend(gin?);
            lines
        }
        "nats" => {
            let url = url(&args, "ESRC_NATS_URL")?;
            let client = async_nats::connect(&url).await?;
            let store = NatsStore::builder()
                .stream(namespace.to_uppercase())
                .prefix(namespace.clone())
                .build(client.clone())
                .await?;
            let raw = RawNats::new(client.clone()).await?;
            let plain = RawNats::plain(client.clone()).await?;
            let bytes = if wanted("bytes") {
                workloads::nats_stored_bytes(&store, 1_000).await
            } else {
                Ok(Vec::new())
            };
            // Before the workloads, so that its category holds only its own events.
            let layout = if wanted("layout") {
                let per_round = if args.quick { 10 } else { 100 };
                let stream = namespace.to_uppercase();
                esrc_bench::layout::nats_layout(client, &store, &stream, &namespace, per_round)
                    .await
            } else {
                Ok(Vec::new())
            };
            let lines =
                workloads::run(store.clone(), raw, sizes, 2.0, None, Some(plain), only).await;
            store.destroy().await?;
            let mut lines = lines?;
            lines.extend(bytes?);
            lines.extend(layout?);
            lines
        }
        other => return Err(format!("unknown store `{other}`\n\n{USAGE}").into()),
    };
    report::print(&args.store, &lines);
    chart(&args, &lines)?;
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&lines)?)?;
        println!("\nwrote {path}");
    }
    Ok(())
}
