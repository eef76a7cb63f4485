//! What a store holds, as commands check names against it.

use anyhow::{Context as _, bail};
use esrc::{AnyStore, Replay};

/// The names of the categories `store` holds events of; `None` if it cannot list them.
pub(crate) async fn stored_categories(store: &AnyStore) -> anyhow::Result<Option<Vec<String>>> {
    match store.categories().await {
        Ok(categories) => Ok(Some(categories.into_iter().map(|c| c.name).collect())),
        Err(esrc::Error::NotSupported { .. }) => Ok(None),
        Err(error) => Err(error).context("cannot list the store's categories"),
    }
}

/// Refuses a category the store holds no events of, naming the near ones (another case,
/// a letter or two off): `tab` for `Tab` would otherwise read nothing, and say nothing.
pub(crate) async fn check_categories(store: &AnyStore, given: &[String]) -> anyhow::Result<()> {
    let Some(stored) = stored_categories(store).await? else {
        return Ok(());
    };
    for name in given {
        if let Some(message) = unknown(name, &stored) {
            bail!("{message}");
        }
    }
    Ok(())
}

/// Why `name` is not one of `stored`, with the near ones; `None` if it is.
pub(crate) fn unknown(name: &str, stored: &[String]) -> Option<String> {
    if stored.iter().any(|category| category == name) {
        return None;
    }
    let near: Vec<String> = stored
        .iter()
        .filter(|category| {
            category.eq_ignore_ascii_case(name)
                || distance(&category.to_ascii_lowercase(), &name.to_ascii_lowercase()) <= 2
        })
        .map(|category| format!("`{category}`"))
        .collect();
    let mut message = format!("the store holds no events of category `{name}`");
    if near.is_empty() {
        message.push_str(&format!(" (it holds: {})", listed(stored)));
    } else {
        message.push_str(&format!("; did you mean {}?", near.join(" or ")));
    }
    Some(message)
}

fn listed(stored: &[String]) -> String {
    if stored.is_empty() {
        return "nothing yet".to_owned();
    }
    stored
        .iter()
        .map(|category| format!("`{category}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The edit distance between two short names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_case_or_a_typo_names_the_near_category() {
        let stored = ["Tab".to_owned(), "Kitchen".to_owned()];
        assert_eq!(unknown("Tab", &stored), None);
        let message = unknown("tab", &stored).unwrap();
        assert!(message.contains("did you mean `Tab`?"), "{message}");
        let message = unknown("Kitchn", &stored).unwrap();
        assert!(message.contains("`Kitchen`"), "{message}");
        let message = unknown("Order", &stored).unwrap();
        assert!(message.contains("it holds: `Tab`, `Kitchen`"), "{message}");
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
