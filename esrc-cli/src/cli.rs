//! The commands and their arguments.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use esrc::{AnyStore, Position, Uuid, Version};

const EXAMPLES: &str = "\
Stores are named by URL, with the store's options in the query string (`esrc options`):
  postgres://user@host/db?schema=billing      nats://host:4222?stream=BILLING&prefix=billing

Examples:
  esrc status 'postgres://postgres@localhost/app?schema=cafe'
  esrc streams 'postgres://postgres@localhost/app?schema=cafe' Tab
  esrc stream 'nats://localhost:4222?stream=CAFE&prefix=cafe' Tab 0190f5c4-…
  esrc tail 'nats://localhost:4222?stream=CAFE&prefix=cafe' Tab --json
  esrc copy 'postgres://postgres@localhost/app?schema=cafe' 'nats://n1:4222,n2:4222,n3:4222?stream=CAFE&prefix=cafe&replicas=3'
  esrc export 'postgres://postgres@localhost/app?schema=cafe' > cafe.jsonl
  esrc import 'nats://localhost:4222?stream=CAFE&prefix=cafe' < cafe.jsonl
  esrc projection reset 'postgres://postgres@localhost/app?schema=cafe' open-tabs --to 0

Exit status: 0 done, 1 failed, 2 bad arguments, 65 malformed input, 130 interrupted.";

/// esrc, the command line: look into an event store, follow it, copy it to another
/// backend, export and import it.
#[derive(Debug, Parser)]
#[command(name = "esrc", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Categories with their event and stream counts, the head position, and every
    /// projection's checkpoint with its lag in events.
    Status {
        /// The store.
        url: String,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
        /// Refreshes every second until interrupted (with `--json`, one object a line).
        #[arg(long)]
        watch: bool,
    },
    /// The streams of a category: each aggregate id with its event count, last version
    /// and the time of its last event.
    Streams {
        /// The store.
        url: String,
        /// The category.
        category: String,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// The events of one stream: version, position, time, ids, metadata and payload.
    Stream {
        /// The store.
        url: String,
        /// The stream's category.
        category: String,
        /// The stream's aggregate id.
        id: Uuid,
        /// Only the events after this version.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// One JSON object a line (the export format).
        #[arg(long)]
        json: bool,
    },
    /// Follows events as they are stored, one line each, until interrupted.
    Tail {
        /// The store.
        url: String,
        /// The categories to follow (default: every category stored when it starts).
        categories: Vec<String>,
        /// Starts after this position (default: the head, so only new events).
        #[arg(long, conflicts_with = "from_start")]
        from: Option<u64>,
        /// Starts at the first stored event.
        #[arg(long)]
        from_start: bool,
        /// One JSON object a line (the export format).
        #[arg(long)]
        json: bool,
    },
    /// Copies every event from one store to another, keeping stream ids, versions, event
    /// ids, timestamps, schema versions and metadata, in position order. Run it again
    /// after an interruption: it goes on where it stopped and stores nothing twice.
    Copy {
        /// The store to read.
        from: String,
        /// The store to write.
        to: String,
        /// The categories to copy (default: all).
        categories: Vec<String>,
        /// The most events appended at once (events of one stream, consecutive in position
        /// order, go together).
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Writes every event to standard output as JSON Lines (one event a line).
    Export {
        /// The store.
        url: String,
        /// The categories to export (default: all).
        categories: Vec<String>,
    },
    /// Appends the events of a JSON Lines file (as `export` writes it) read from standard
    /// input, with the guarantees of `copy`.
    Import {
        /// The store to write.
        url: String,
        /// The most events appended at once.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Moves a stream written by esrc 0.1 on NATS into any store, payloads and schema
    /// versions as they were.
    #[command(name = "import-0.1")]
    ImportLegacy {
        /// The NATS server holding the 0.1 stream (a plain nats:// URL).
        nats_url: String,
        /// The JetStream stream esrc 0.1 wrote.
        #[arg(long)]
        stream: String,
        /// The store to write.
        to: String,
        /// The most events appended at once.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Looks after projections' checkpoints.
    Projection {
        #[command(subcommand)]
        command: ProjectionCommand,
    },
    /// The options each store takes in its URL's query string, with their defaults.
    Options {
        /// Only this store's: `memory`, `postgres` or `nats`.
        store: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionCommand {
    /// Sets a projection's checkpoint back (or removes it) so that it rebuilds. Stop the
    /// projection first.
    Reset {
        /// The store.
        url: String,
        /// The projection's name.
        name: String,
        /// The position to go back to (default: remove the checkpoint, so the projection
        /// starts from the first event).
        #[arg(long)]
        to: Option<u64>,
        /// Does not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Opens the store `url` names; the error names the scheme, never the whole URL (which
/// may hold a password).
pub(crate) async fn open(url: &str) -> anyhow::Result<AnyStore> {
    let scheme = url.split(':').next().unwrap_or_default();
    esrc::connect(url)
        .await
        .with_context(|| format!("cannot open the {scheme} store"))
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Status { url, json, watch } => {
                crate::status::status(&open(&url).await?, json, watch).await
            }
            Command::Streams {
                url,
                category,
                json,
            } => crate::read::streams(&open(&url).await?, &category, json).await,
            Command::Stream {
                url,
                category,
                id,
                after,
                json,
            } => {
                let store = open(&url).await?;
                crate::read::stream(&store, &category, id, Version(after), json).await
            }
            Command::Tail {
                url,
                categories,
                from,
                from_start,
                json,
            } => {
                let store = open(&url).await?;
                let from = if from_start {
                    Some(Position::ZERO)
                } else {
                    from.map(Position)
                };
                crate::read::tail(&store, categories, from, json).await
            }
            Command::Copy {
                from,
                to,
                categories,
                batch,
            } => {
                let (source, target) = (open(&from).await?, open(&to).await?);
                crate::copy::copy(&source, &target, categories, batch).await
            }
            Command::Export { url, categories } => {
                crate::copy::export(&open(&url).await?, categories).await
            }
            Command::Import { url, batch } => crate::copy::import(&open(&url).await?, batch).await,
            Command::ImportLegacy {
                nats_url,
                stream,
                to,
                batch,
            } => crate::legacy::import(&nats_url, &stream, &open(&to).await?, batch).await,
            Command::Projection {
                command: ProjectionCommand::Reset { url, name, to, yes },
            } => crate::projection::reset(&open(&url).await?, &name, to.map(Position), yes).await,
            Command::Options { store } => crate::options::print(store.as_deref()),
        }
    }
}
