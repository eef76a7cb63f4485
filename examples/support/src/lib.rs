//! Runs an example on the store named by `--store`: `memory` (the default), a
//! `postgres://` URL or a `nats://` URL. The example itself is generic over the store.

use std::error::Error;
use std::future::Future;

use esrc_core::Store;
use esrc_memory::MemoryStore;
use esrc_nats::NatsStore;
use esrc_postgres::PgStore;

/// A boxed error, for examples.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// An example program, runnable on any store.
pub trait App {
    /// Runs the example on `store`; `kind` names the store for the output.
    fn run<S: Store + Clone + 'static>(
        self,
        store: S,
        kind: &'static str,
    ) -> impl Future<Output = Result<(), BoxError>>;
}

/// The value of `--store` on the command line, if any. `--help` prints `usage` and exits.
pub fn store_arg(usage: &str) -> Result<Option<String>, BoxError> {
    let mut args = std::env::args().skip(1);
    let mut store = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => store = Some(args.next().ok_or("--store needs a value")?),
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{usage}").into()),
        }
    }
    Ok(store)
}

/// Connects to the store `url` names, in namespace `namespace` (a PostgreSQL schema, a
/// NATS stream and subject prefix), and runs `app` on it.
pub async fn run_on(url: Option<&str>, namespace: &str, app: impl App) -> Result<(), BoxError> {
    match url {
        None | Some("memory") => app.run(MemoryStore::new(), "memory").await,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PgStore::builder().schema(namespace).connect(url).await?;
            store.migrate().await?;
            app.run(store, "PostgreSQL").await
        }
        Some(url) if url.starts_with("nats://") => {
            let store = NatsStore::builder()
                .stream(namespace.to_uppercase())
                .prefix(namespace)
                .connect(url)
                .await?;
            app.run(store, "NATS JetStream").await
        }
        Some(other) => Err(format!(
            "unknown store `{other}`: use `memory`, a postgres:// URL or a nats:// URL"
        )
        .into()),
    }
}

/// Prints rows as a table with aligned columns under a title.
pub fn print_table(title: &str, header: &[&str], rows: &[Vec<String>]) {
    println!("\n{title}");
    if rows.is_empty() {
        println!("  (none)");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("  {}", text.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    line(
        &mut widths
            .iter()
            .map(|w| "─".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}
