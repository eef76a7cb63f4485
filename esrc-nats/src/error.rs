//! The store's own error and the mapping of JetStream error codes.

use esrc_core::Error;

pub(crate) const BACKEND: &str = "nats";

/// JetStream error codes the store acts on (never the description text).
pub(crate) mod code {
    /// `Nats-Expected-Last-Subject-Sequence` did not match: another writer won.
    pub(crate) const WRONG_LAST_SEQUENCE: u64 = 10071;
    /// An atomic batch repeated a message id already stored (or inside the batch).
    pub(crate) const BATCH_DUPLICATE_ID: u64 = 10201;
    /// The stream does not allow atomic publish.
    pub(crate) const ATOMIC_DISABLED: u64 = 10174;
}

/// What is wrong with a NATS deployment for esrc; carried as the source of
/// [`Error::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The server is older than esrc needs (atomic batch publish came in 2.12).
    #[error("nats-server {found} is too old: esrc needs 2.12 or later for atomic batch publish")]
    ServerTooOld {
        /// The version the server reported.
        found: String,
    },
    /// An existing stream's configuration conflicts with what the store needs.
    #[error("stream `{stream}` exists with a configuration esrc cannot use: {}", problems.join("; "))]
    StreamConfig {
        /// The stream's name.
        stream: String,
        /// Each conflict, described.
        problems: Vec<String>,
    },
    /// The server answered an API call with an error.
    #[error("JetStream error {code}: {description}")]
    Api {
        /// The JetStream error code (`err_code`).
        code: u64,
        /// The server's description.
        description: String,
    },
}

/// A non-retryable backend error with a source.
pub(crate) fn fatal(source: impl Into<esrc_core::BoxError>) -> Error {
    Error::backend(BACKEND, false, source)
}

/// A client or connection failure: the call may succeed when tried again.
pub(crate) fn transient(source: impl Into<esrc_core::BoxError>) -> Error {
    Error::backend(BACKEND, true, source)
}

/// Checks a server version string against [`crate::MIN_SERVER_VERSION`].
pub(crate) fn check_server_version(version: &str) -> Result<(), Error> {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|part| part.parse::<u64>().ok());
    let major = parts.next().flatten();
    let minor = parts.next().flatten();
    match (major, minor) {
        (Some(major), Some(minor)) if (major, minor) >= crate::MIN_SERVER_VERSION => Ok(()),
        _ => Err(fatal(NatsError::ServerTooOld {
            found: version.to_owned(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::check_server_version;

    #[test]
    fn server_versions() {
        for ok in [
            "2.12.0",
            "2.15.1",
            "v2.12.0-beta.1",
            "3.0.0",
            "2.14.0+build",
        ] {
            assert!(check_server_version(ok).is_ok(), "{ok}");
        }
        for old in ["2.11.9", "2.9.25", "1.4.0", "", "garbage"] {
            assert!(check_server_version(old).is_err(), "{old}");
        }
    }
}
