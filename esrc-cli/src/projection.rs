//! `esrc projection reset`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::bail;
use esrc::{AnyStore, CheckpointStore, Position, Replay};

pub(crate) async fn reset(
    store: &AnyStore,
    name: &str,
    to: Option<Position>,
    yes: bool,
) -> anyhow::Result<()> {
    let current = store.load_checkpoint(name).await?;
    let Some(current) = current else {
        out!("Projection `{name}` has no checkpoint: nothing to reset.");
        return Ok(());
    };
    if let Some(position) = to {
        let stored = crate::catalog::stored_categories(store)
            .await?
            .unwrap_or_default();
        let names: Vec<&str> = stored.iter().map(String::as_str).collect();
        let head = store.head(&names).await?;
        if position > head {
            bail!(
                "position {position} is past the store's last event ({head}): a projection \
                 reset to it would skip every event written until then"
            );
        }
    }
    let what = match to {
        Some(position) => {
            format!("set projection `{name}`'s checkpoint from {current} back to {position}")
        }
        None => format!(
            "remove projection `{name}`'s checkpoint (at {current}), so that it rebuilds from the first event"
        ),
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not asking on a non-terminal: to {what}, pass --yes");
        }
        print!("This will {what}. Stop its runners first. Go on? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            out!("Nothing changed.");
            return Ok(());
        }
    }
    store.reset_checkpoint(name, to).await?;
    match to {
        Some(position) => out!("Projection `{name}`: checkpoint set to {position}."),
        None => out!("Projection `{name}`: checkpoint removed."),
    }
    Ok(())
}
