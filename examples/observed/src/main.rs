//! The cafe kept open, and watched: a table is served every tenth of a second (a tab
//! opened, an order placed, the drinks served, the tab closed) while the open-tabs read
//! model follows, until interrupted. With `--metrics ADDR` esrc's metrics are served in
//! Prometheus's text format at `http://ADDR/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cafe::{MenuItem, OpenTabs, ReadModel, ReadModelProjection, Tab, TabCommand};
use esrc::metrics::Metered;
use esrc::projector::Projector;
use esrc::{AnyStore, PublishExt, Root};
use esrc_examples_support::{BoxError, open, report};
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing::Instrument;
use uuid::Uuid;

const USAGE: &str = "\
The cafe kept open, watched: a table served every tenth of a second until interrupted.

Usage: observed [--store STORE] [--metrics ADDR] [--tables N]

STORE   `memory` (the default), a postgres:// URL or a nats:// URL
ADDR    where to serve Prometheus's text format, e.g. 127.0.0.1:9000 (at /metrics)
N       stop after N tables instead of when interrupted";

/// The command line.
#[derive(Default)]
struct Args {
    store: Option<String>,
    metrics: Option<SocketAddr>,
    tables: Option<u32>,
}

fn args() -> Result<Args, BoxError> {
    let mut args = Args::default();
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = || {
            given
                .next()
                .ok_or(format!("{arg} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--store" => args.store = Some(value()?),
            "--metrics" => {
                let addr = value()?;
                let parsed = addr
                    .parse()
                    .map_err(|error| format!("--metrics {addr}: {error}"))?;
                args.metrics = Some(parsed);
            }
            "--tables" => {
                let tables = value()?;
                let parsed = tables
                    .parse()
                    .map_err(|error| format!("--tables {tables}: {error}"))?;
                args.tables = Some(parsed);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}").into()),
        }
    }
    Ok(args)
}

/// The `store` label of the metrics: the URL's scheme, in short.
fn label(url: Option<&str>) -> &'static str {
    match url.and_then(|url| url.split(':').next()) {
        Some("postgres" | "postgresql") => "postgres",
        Some("memory") | None => "memory",
        Some(_) => "nats",
    }
}

/// One table's visit: every command in a span of its own, so that a tracing subscriber
/// with OpenTelemetry sees each command and the projection of its events linked to it.
async fn serve(store: &AnyStore, table_number: u32) -> Result<(), BoxError> {
    let coke = MenuItem {
        menu_number: 1,
        description: "Coke".to_owned(),
        is_drink: true,
        price: 250,
    };
    let commands = [
        TabCommand::OpenTab {
            table_number,
            waiter: "Ann".to_owned(),
        },
        TabCommand::PlaceOrder { items: vec![coke] },
        TabCommand::MarkDrinksServed {
            menu_numbers: vec![1],
        },
        TabCommand::CloseTab { amount_paid: 250 },
    ];
    let mut tab = Root::<Tab>::new(Uuid::now_v7());
    for command in commands {
        let span = tracing::info_span!("command", table = table_number, ?command);
        store
            .try_write(&mut tab, command)
            .instrument(span)
            .await
            .map_err(|error| format!("table {table_number}: {error}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    report(run().await)
}

async fn run() -> Result<(), BoxError> {
    let args = args()?;
    if let Some(addr) = args.metrics {
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|error| format!("cannot serve metrics on {addr}: {error}"))?;
        println!("Metrics: http://{addr}/metrics");
    }
    let (store, kind) = open(args.store.as_deref(), "observed").await?;
    let store: AnyStore = Arc::new(Metered::new(store, label(args.store.as_deref())));
    let open_tabs = ReadModelProjection::<AnyStore, OpenTabs>::load(store.clone()).await?;
    let projector = Projector::new(store.clone(), OpenTabs::NAME, open_tabs)
        .checkpoint_every(20)
        .spawn();
    println!("The cafe is open on the {kind} store; Ctrl-C closes it.");

    let mut served = 0;
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    while args.tables.is_none_or(|tables| served < tables) {
        tokio::select! {
            _ = &mut interrupted => break,
            _ = every.tick() => {}
        }
        // Table numbers go round 1..=100: a tab is closed before its table comes again.
        serve(&store, served % 100 + 1).await?;
        served += 1;
        if served % 50 == 0 {
            println!("  {served} tables served");
        }
    }
    let open_tabs = projector.stop().await?;
    println!(
        "Closed after {served} tables; the open-tabs read model is at position {}.",
        open_tabs.kept().position
    );
    Ok(())
}
