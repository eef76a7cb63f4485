//! What the examples share: the `--store` argument, opening the store it names with
//! `esrc::connect_with`, and printing tables.

use std::error::Error;

use esrc::AnyStore;

/// A boxed error, for examples.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Ends an example: on failure prints `error: …` and each cause on a line of its own, and
/// gives exit status 1.
pub fn report(result: Result<(), BoxError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", esrc::Report::from(BoxedError(error)));
            std::process::ExitCode::FAILURE
        }
    }
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

/// Opens the store `url` names (`memory:` when there is none) with
/// [`esrc::connect_with`], in the example's own namespace: the PostgreSQL schema and the
/// NATS subject prefix `namespace`, the NATS stream `NAMESPACE`; PostgreSQL's tables are
/// created if missing. The URL's own options win. Returns the store and what to call it.
pub async fn open(
    url: Option<&str>,
    namespace: &str,
) -> Result<(AnyStore, &'static str), BoxError> {
    let url = match url {
        None | Some("memory") => "memory:",
        Some(url) => url,
    };
    let stream = namespace.to_uppercase();
    let defaults = [
        ("schema", namespace),
        ("migrate", "true"),
        ("stream", stream.as_str()),
        ("prefix", namespace),
    ];
    let store = esrc::connect_with(url, defaults).await?;
    let kind = match url.split(':').next().unwrap_or_default() {
        "postgres" | "postgresql" => "PostgreSQL",
        "memory" => "memory",
        _ => "NATS JetStream",
    };
    Ok((store, kind))
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

/// A boxed error as an error of its own, so that it converts into an [`esrc::Report`].
#[derive(Debug)]
struct BoxedError(BoxError);

impl std::fmt::Display for BoxedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Error for BoxedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}
