//! Classifying sqlx errors by kind and SQLSTATE (never by message text).

use esrc_core::Error;

pub(crate) const BACKEND: &str = "postgres";

/// The SQLSTATE codes esrc tells apart, by their names in PostgreSQL's Appendix A.
mod sqlstate {
    /// `undefined_table`: the store's tables were never created.
    pub(super) const UNDEFINED_TABLE: &str = "42P01";
    /// `undefined_function`: a store created by an earlier version lacks the functions
    /// of a later migration (`position_base`, migration 2; `append_base`, migration 4;
    /// esrc's statements call no other function that may be missing).
    pub(super) const UNDEFINED_FUNCTION: &str = "42883";
    /// `undefined_column`: a store created by an earlier version lacks the columns of a
    /// later migration (types and tags, migration 3).
    pub(super) const UNDEFINED_COLUMN: &str = "42703";
    /// Class 08, connection exceptions.
    pub(super) const CONNECTION_EXCEPTION_CLASS: &str = "08";
    /// Class 40, transaction rollbacks: serialization failures and deadlocks.
    pub(super) const TRANSACTION_ROLLBACK_CLASS: &str = "40";
    /// `admin_shutdown`: an administrator ended the session.
    pub(super) const ADMIN_SHUTDOWN: &str = "57P01";
    /// `crash_shutdown`: the server is restarting after a crash.
    pub(super) const CRASH_SHUTDOWN: &str = "57P02";
    /// `cannot_connect_now`: the server is starting or shutting down.
    pub(super) const CANNOT_CONNECT_NOW: &str = "57P03";
    /// `too_many_connections`.
    pub(super) const TOO_MANY_CONNECTIONS: &str = "53300";
    /// `lock_not_available`: a lock timeout.
    pub(super) const LOCK_NOT_AVAILABLE: &str = "55P03";
}

/// The unique constraint on event ids: an append reused ids.
pub(crate) const EVENT_ID_KEY: &str = "events_event_id_key";
/// The unique constraint on (category, aggregate id, version): another writer won.
pub(crate) const STREAM_VERSION_KEY: &str = "events_stream_version_key";

/// What a failed statement means to the store.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A unique constraint fired; the name tells which.
    Unique(String),
    /// Anything else, already classified.
    Other(Error),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            // `unique_violation` (23505).
            if db.is_unique_violation() {
                return Failure::Unique(db.constraint().unwrap_or_default().to_owned());
            }
        }
        Failure::Other(backend(error))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Other(error)
    }
}

/// Maps a sqlx error into the core error, marking what may succeed when retried.
///
/// A server's error becomes [`PgError::Server`] (its message and SQLSTATE, without the
/// line of the server's source code that sqlx adds), or [`PgError::NotMigrated`] when the
/// store's tables are missing.
pub(crate) fn backend(error: sqlx::Error) -> Error {
    let retryable = backend_retryable(&error);
    let sqlx::Error::Database(db) = &error else {
        return Error::backend(BACKEND, retryable, error);
    };
    let message = db.message().to_owned();
    let code = db.code().map(|code| code.into_owned()).unwrap_or_default();
    if code == sqlstate::UNDEFINED_TABLE
        || code == sqlstate::UNDEFINED_FUNCTION
        || code == sqlstate::UNDEFINED_COLUMN
    {
        let elsewhere = Vec::new();
        return Error::backend(BACKEND, false, PgError::NotMigrated { message, elsewhere });
    }
    Error::backend(BACKEND, retryable, PgError::Server { message, code })
}

/// A sqlx error in a line for people: a server's error by its message and SQLSTATE
/// (sqlx adds the server's source line, which helps nobody here).
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Whether TLS failed: sqlx's own TLS error, or a rustls error (a refused certificate)
/// that reached the connection as an I/O error.
fn refused_by_tls(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// The end of [`PgError::NotMigrated`]'s message: the schemas that do hold esrc's tables.
fn elsewhere_hint(elsewhere: &[String]) -> String {
    if elsewhere.is_empty() {
        return String::new();
    }
    let named: Vec<String> = elsewhere
        .iter()
        .map(|schema| format!("`{schema}`"))
        .collect();
    format!(
        "; this database holds esrc's tables in the schema {}: to use them, connect with `?schema={}`",
        named.join(", "),
        elsewhere[0]
    )
}

/// Whether `error` is [`PgError::NotMigrated`].
pub(crate) fn is_not_migrated(error: &Error) -> bool {
    match error {
        Error::Backend { source, .. } => {
            matches!(
                source.downcast_ref::<PgError>(),
                Some(PgError::NotMigrated { .. })
            )
        }
        _ => false,
    }
}

/// What to check when TLS failed.
const TLS_HINT: &str = " (TLS: with `sslmode=verify-ca` or `verify-full` the server's \
    certificate must be signed by the CA in `sslrootcert` (or one the system trusts), and with \
    `verify-full` name the host)";

/// What to check after a failed connection, where the error tells.
pub(crate) fn connect_hint(error: &sqlx::Error) -> &'static str {
    use std::io::ErrorKind;
    match error {
        _ if refused_by_tls(error) => TLS_HINT,
        sqlx::Error::Protocol(_) => {
            " (the server did not answer as PostgreSQL: is it the right port?)"
        }
        sqlx::Error::Io(io)
            if matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) =>
        {
            " (the server did not answer as PostgreSQL: is it the right port?)"
        }
        _ => "",
    }
}

/// Whether the same call may succeed when tried again.
pub(crate) fn backend_retryable(error: &sqlx::Error) -> bool {
    match error {
        _ if refused_by_tls(error) => false,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_retryable_sqlstate(&code)),
        _ => false,
    }
}

/// Connection exceptions (class 08), serialization failures and deadlocks (class 40),
/// an administrator ending the session or the server shutting down (57P01..57P03), too
/// many connections (53300) and lock timeouts (55P03).
fn is_retryable_sqlstate(code: &str) -> bool {
    use sqlstate::*;
    code.starts_with(CONNECTION_EXCEPTION_CLASS)
        || code.starts_with(TRANSACTION_ROLLBACK_CLASS)
        || [
            ADMIN_SHUTDOWN,
            CRASH_SHUTDOWN,
            CANNOT_CONNECT_NOW,
            TOO_MANY_CONNECTIONS,
            LOCK_NOT_AVAILABLE,
        ]
        .contains(&code)
}

/// A number read from the database that does not fit the core type.
pub(crate) fn out_of_range(column: &'static str, value: i64) -> Error {
    Error::backend(BACKEND, false, PgError::OutOfRange { column, value })
}

/// An error of the client library (sqlx), opaque so that its type is not part of this
/// crate's API: it shows the server's message and SQLSTATE (or the system's), and its
/// own causes follow as its [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct ClientError {
    message: String,
    inner: sqlx::Error,
}

impl ClientError {
    pub(crate) fn new(inner: sqlx::Error) -> Self {
        Self {
            message: describe(&inner),
            inner,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // sqlx's cause, unless the message already is it (an I/O error is shown as
        // itself).
        let cause = std::error::Error::source(&self.inner)?;
        if cause.to_string() == self.message {
            cause.source()
        } else {
            Some(cause)
        }
    }
}

/// What is wrong with what esrc read from PostgreSQL, when it is not an event or a
/// snapshot (those are [`Error::Format`] naming their category and position); carried as
/// the source of [`Error::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL at {host}:{port} (database `{database}`){hint}")]
    Connect {
        /// What to check, where it is known.
        hint: &'static str,
        /// The host tried.
        host: String,
        /// The port tried.
        port: u16,
        /// The database asked for.
        database: String,
        /// Why: the server's or the system's message.
        #[source]
        source: ClientError,
    },

    /// The server did not answer within the connect timeout.
    #[error(
        "cannot connect to PostgreSQL at {host}:{port} (database `{database}`): no answer within {timeout:?}"
    )]
    ConnectTimeout {
        /// The host tried.
        host: String,
        /// The port tried.
        port: u16,
        /// The database asked for.
        database: String,
        /// The connect timeout.
        timeout: std::time::Duration,
    },

    /// The store's tables do not exist in its schema, or an earlier version created them
    /// and they lack a later migration.
    #[error(
        "esrc's tables are missing or older than this version ({message}): create or upgrade them once with `PgStore::migrate()`, or by adding `?migrate=true` to the URL given to `esrc::connect` or to the `esrc` command (`esrc status 'postgres://…?migrate=true'`){}",
        elsewhere_hint(.elsewhere)
    )]
    NotMigrated {
        /// The server's message.
        message: String,
        /// Other schemas of the database that hold esrc's tables (a `schema` option
        /// forgotten or misspelt), when the store looked.
        elsewhere: Vec<String>,
    },

    /// The server refused a statement: its message and SQLSTATE.
    #[error("{message} (SQLSTATE {code})")]
    Server {
        /// The server's message.
        message: String,
        /// The SQLSTATE code.
        code: String,
    },

    /// A number in esrc's tables is outside what esrc writes there.
    #[error("{column} {value} read from the database is out of range")]
    OutOfRange {
        /// The column.
        column: &'static str,
        /// The value found.
        value: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::is_retryable_sqlstate;

    #[test]
    fn sqlstates() {
        for code in ["08006", "08003", "40001", "40P01", "57P01", "53300"] {
            assert!(is_retryable_sqlstate(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "XX000"] {
            assert!(!is_retryable_sqlstate(code), "{code}");
        }
    }
}
