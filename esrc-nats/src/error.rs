//! The store's own error, and the one place where what the server or the client said is
//! classified: a lost race, a duplicate, a failure a retry can fix, or a permanent one.
//! Call sites never decide retryability themselves.

use std::time::Duration;

use async_nats::client::{PublishErrorKind, RequestErrorKind};
use esrc_core::Error;
use serde::Deserialize;

pub(crate) const BACKEND: &str = "nats";

/// JetStream error codes the store acts on (never the description text).
pub(crate) mod code {
    /// `Nats-Expected-Last-Subject-Sequence` did not match: another writer won.
    pub(crate) const WRONG_LAST_SEQUENCE: u64 = 10071;
    /// The same lost race as seen by a replicated stream while another conditional
    /// publish to the subject is in flight.
    pub(crate) const WRONG_LAST_SEQUENCE_IN_FLIGHT: u64 = 10164;
    /// The subject's last sequence cannot be checked yet (a new leader catching up).
    pub(crate) const LAST_SEQUENCE_NOT_READY: u64 = 10163;
    /// An atomic batch repeated a message id already stored (or inside the batch).
    pub(crate) const BATCH_DUPLICATE_ID: u64 = 10201;
    /// A message id is being stored by an earlier message still in flight: a replicated
    /// stream proposes a message to its replicas before it stores it, and answers a
    /// message with the same id in the meantime with this (an append sent again while
    /// its first try replicates). The earlier message's outcome is not known yet.
    pub(crate) const DUPLICATE_IN_PROCESS: u64 = 10158;
    /// The stream does not allow atomic publish.
    pub(crate) const ATOMIC_DISABLED: u64 = 10174;
    /// The cluster cannot handle the request now (no leader).
    pub(crate) const NOT_LEADER: u64 = 10009;
    /// A replication (RAFT) failure.
    pub(crate) const RAFT: u64 = 10041;
    /// The server has too many requests in flight for the stream.
    pub(crate) const TOO_MANY_REQUESTS: u64 = 10167;
    /// An atomic batch was abandoned before its commit: a message of it was lost (the
    /// server restarted or a route dropped mid-batch) or it took too long. Nothing of it
    /// was stored; sent again, it may succeed.
    pub(crate) const BATCH_INCOMPLETE: u64 = 10176;
    /// Too many atomic batches in flight for the stream.
    pub(crate) const BATCH_TOO_MANY_IN_FLIGHT: u64 = 10210;
    /// A message is larger than the stream's `max_msg_size`.
    pub(crate) const MESSAGE_TOO_LARGE: u64 = 10054;
    /// Too few JetStream servers are online for the stream's replicas (a node is down or
    /// has not joined the cluster yet, or a loaded node missed its heartbeats); it passes
    /// when they are back.
    pub(crate) const NO_SUITABLE_PEERS: u64 = 10005;
}

/// An error of the client library (async-nats), opaque so that its type is not part of
/// this crate's API: it shows the client's message, and its own causes follow as its
/// [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct ClientError(async_nats::ConnectError);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// What is wrong with a NATS deployment or a call to it; carried as the source of
/// [`Error::Backend`], whose `retryable` flag says whether the same call may succeed later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The server runs without JetStream, which esrc stores everything in.
    #[error(
        "nats-server at {server} has JetStream turned off: start it with `-js` (or a `jetstream {{}}` block in its configuration)"
    )]
    NoJetStream {
        /// The server the client is connected to.
        server: String,
    },
    /// The servers could not be reached, or refused the connection.
    #[error("cannot connect to NATS at {servers}{hint}")]
    Connect {
        /// The hosts and ports tried.
        servers: String,
        /// What to check, where it is known.
        hint: &'static str,
        /// Why: the client's error.
        #[source]
        source: ClientError,
    },
    /// The credentials file could not be read or parsed. Only the file's name and the
    /// kind of failure are shown, never its content.
    #[error("cannot use the NATS credentials file `{}`: {reason}", path.display())]
    Credentials {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong (not found, permission denied, not a credentials file…).
        reason: std::io::ErrorKind,
    },
    /// The servers answered, but not as NATS: none sent the `INFO` line a NATS server
    /// greets with.
    #[error(
        "the server at {servers} did not answer as NATS (no INFO within {waited:?}): is it the right port? (NATS listens on 4222 unless told otherwise)"
    )]
    NotNats {
        /// The hosts and ports tried.
        servers: String,
        /// How long it waited for a greeting.
        waited: Duration,
    },
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
    /// An event (payload and headers) is larger than the server or the stream accepts.
    /// Permanent.
    #[error("a message of {size} bytes exceeds {limit} of {max} bytes")]
    PayloadTooLarge {
        /// The message's size with its headers (at least this large, when only the
        /// server's refusal said so).
        size: usize,
        /// The limit, in bytes.
        max: usize,
        /// Which limit: the server's `max_payload` or the stream's `max_msg_size`.
        limit: Limit,
    },
    /// Nothing answered on a JetStream subject: the stream has no leader (an election, or
    /// no quorum), or it was deleted. Retryable: elections end within seconds.
    #[error(
        "no JetStream server answered for `{subject}`: the stream is electing a leader, has no quorum, or was deleted"
    )]
    NoResponders {
        /// The subject that was asked.
        subject: String,
    },
    /// The client did not reach a server within the connect timeout.
    #[error("no connection to a NATS server within {timeout:?}")]
    NotConnected {
        /// How long the store waited.
        timeout: Duration,
    },
    /// A projection's checkpoint in the bucket holds no position (written by something
    /// other than esrc).
    #[error("checkpoint `{name}` holds no position")]
    BadCheckpoint {
        /// The projection's name.
        name: String,
    },
    /// The server's reply could not be read.
    #[error("unreadable reply from the server")]
    BadReply(#[source] serde_json::Error),
    /// A read made no progress for too long (a replica far behind, a consumer that could
    /// not be made). Retryable.
    #[error("a read made no progress at sequence {sequence} for {waited:?}")]
    Stalled {
        /// The sequence the read was waiting for.
        sequence: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// An append kept losing races for longer than the store's append deadline.
    #[error("an `Expected::Any` append kept losing races to other writers for {0:?}")]
    Contended(Duration),
}

/// A limit on the size of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// The server's `max_payload` (1 MiB unless configured): every message, headers
    /// included.
    ServerMaxPayload,
    /// The stream's `max_msg_size`.
    StreamMaxMsgSize,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ServerMaxPayload => "the server's max_payload",
            Self::StreamMaxMsgSize => "the stream's max_msg_size",
        })
    }
}

/// A non-retryable backend error with a source.
pub(crate) fn fatal(source: impl Into<esrc_core::BoxError>) -> Error {
    Error::backend(BACKEND, false, source)
}

/// A failure that the same call may not meet again (a lost connection, a timeout, an
/// election).
pub(crate) fn transient(source: impl Into<esrc_core::BoxError>) -> Error {
    Error::backend(BACKEND, true, source)
}

/// An error reply of the JetStream API.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApiError {
    /// The HTTP-like status (503: unavailable for now).
    #[serde(default)]
    pub(crate) code: u16,
    #[serde(default)]
    pub(crate) err_code: u64,
    #[serde(default)]
    pub(crate) description: String,
}

/// What an error reply to a publish means.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The subject's last sequence was not the expected one: another writer won.
    LostRace,
    /// The event ids are stored already.
    Duplicate,
    /// A message exceeds the stream's `max_msg_size` (which may have been lowered since
    /// the store connected).
    TooLarge,
    /// The event ids are being stored by an earlier send still in flight: look again
    /// shortly (the error, retryable, is for a caller who can wait no longer).
    InProcess(Error),
    /// Anything else, classified.
    Failed(Error),
}

/// Classifies an API error reply: by its code, never by its text.
pub(crate) fn refusal(error: ApiError, stream: &str) -> Refusal {
    match error.err_code {
        code::WRONG_LAST_SEQUENCE | code::WRONG_LAST_SEQUENCE_IN_FLIGHT => Refusal::LostRace,
        code::BATCH_DUPLICATE_ID => Refusal::Duplicate,
        code::MESSAGE_TOO_LARGE => Refusal::TooLarge,
        code::DUPLICATE_IN_PROCESS => Refusal::InProcess(api(error)),
        code::ATOMIC_DISABLED => Refusal::Failed(fatal(NatsError::StreamConfig {
            stream: stream.to_owned(),
            problems: vec!["allow_atomic_publish is off".into()],
        })),
        _ => Refusal::Failed(api(error)),
    }
}

/// An API error reply as an [`Error`], retryable when the server says it is unavailable
/// for now (status 503) or names a passing cluster condition.
pub(crate) fn api(error: ApiError) -> Error {
    let retryable = error.code == 503
        || matches!(
            error.err_code,
            code::LAST_SEQUENCE_NOT_READY
                | code::NOT_LEADER
                | code::RAFT
                | code::TOO_MANY_REQUESTS
                | code::BATCH_INCOMPLETE
                | code::BATCH_TOO_MANY_IN_FLIGHT
                | code::NO_SUITABLE_PEERS
                | code::DUPLICATE_IN_PROCESS
        );
    Error::backend(
        BACKEND,
        retryable,
        NatsError::Api {
            code: error.err_code,
            description: error.description,
        },
    )
}

/// A failed request (the client's error, not the server's reply).
pub(crate) fn request(error: async_nats::RequestError, subject: &str, max: usize) -> Error {
    match error.kind() {
        // Without responders nothing was stored; an election or lost quorum ends.
        RequestErrorKind::NoResponders => transient(NatsError::NoResponders {
            subject: subject.to_owned(),
        }),
        RequestErrorKind::MaxPayloadExceeded => fatal(NatsError::PayloadTooLarge {
            size: max.saturating_add(1),
            max,
            limit: Limit::ServerMaxPayload,
        }),
        RequestErrorKind::InvalidSubject => fatal(error),
        RequestErrorKind::TimedOut | RequestErrorKind::Other => transient(error),
    }
}

/// A failed plain publish.
pub(crate) fn publish(error: async_nats::PublishError, max: usize) -> Error {
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded => fatal(NatsError::PayloadTooLarge {
            size: max.saturating_add(1),
            max,
            limit: Limit::ServerMaxPayload,
        }),
        PublishErrorKind::InvalidSubject => fatal(error),
        _ => transient(error),
    }
}

/// A failed connection to `servers` (hosts and ports only, no credentials): refused,
/// unreachable or timed out is retryable; bad credentials, TLS or an address that does
/// not parse are not.
pub(crate) fn connect(error: async_nats::ConnectError, servers: String) -> Error {
    use async_nats::ConnectErrorKind;
    let kind = error.kind();
    const TLS_HINT: &str = " (TLS: check `tls_ca` (the CA that signed the server's certificate), `tls_cert` and `tls_key`, and whether the server wants `tls_first`)";
    let hint = match kind {
        // rustls reports a certificate it refuses (or a handshake it cannot make) as
        // invalid data on the connection.
        ConnectErrorKind::Io if invalid_data(&error) => TLS_HINT,
        ConnectErrorKind::TimedOut => {
            " (no NATS server answered in time: is it the right host and port?)"
        }
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            " (check the user and password in the URL, or the `creds`, `nkey` or `token` option)"
        }
        ConnectErrorKind::Tls => TLS_HINT,
        _ => "",
    };
    let failure = NatsError::Connect {
        servers,
        hint,
        source: ClientError(error),
    };
    match kind {
        ConnectErrorKind::Io if hint == TLS_HINT => fatal(failure),
        ConnectErrorKind::Io
        | ConnectErrorKind::TimedOut
        | ConnectErrorKind::Dns
        | ConnectErrorKind::MaxReconnects => transient(failure),
        ConnectErrorKind::ServerParse
        | ConnectErrorKind::Authentication
        | ConnectErrorKind::AuthorizationViolation
        | ConnectErrorKind::Tls => fatal(failure),
    }
}

/// Whether a cause of `error` is an I/O error of kind `InvalidData`: how a TLS failure
/// reaches the connection.
fn invalid_data(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
        }
        cause = current.source();
    }
    false
}

/// Any other async-nats error, classified by what it carries: a JetStream API error by
/// its code (see [`api`]), a failed request by its kind, and anything else — a lost
/// connection, a timeout, a reply that did not come — as retryable.
pub(crate) fn client(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<async_nats::jetstream::Error>() {
            return jetstream(refused);
        }
        if let Some(request) = current.downcast_ref::<async_nats::RequestError>() {
            if request.kind() == RequestErrorKind::InvalidSubject {
                return fatal(error);
            }
        }
        cause = current.source();
    }
    transient(error)
}

/// A JetStream API error as async-nats parsed it.
pub(crate) fn jetstream(error: &async_nats::jetstream::Error) -> Error {
    api(ApiError {
        code: u16::try_from(error.code()).unwrap_or(500),
        err_code: error.error_code().0,
        description: error.to_string(),
    })
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
    use super::*;

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

    fn reply(code: u16, err_code: u64) -> ApiError {
        ApiError {
            code,
            err_code,
            description: "described".into(),
        }
    }

    #[test]
    fn both_wrong_last_sequence_codes_are_a_lost_race() {
        for err_code in [10071, 10164] {
            assert!(matches!(
                refusal(reply(400, err_code), "S"),
                Refusal::LostRace
            ));
        }
        assert!(matches!(
            refusal(reply(400, 10201), "S"),
            Refusal::Duplicate
        ));
        let Refusal::InProcess(error) = refusal(reply(400, 10158), "S") else {
            panic!("10158 is an earlier send in flight");
        };
        assert!(error.is_retryable(), "{error}");
    }

    #[test]
    fn passing_cluster_conditions_are_retryable_and_the_rest_permanent() {
        for (code, err_code) in [
            (503, 10008),
            (500, 10009),
            (400, 10163),
            (503, 0),
            (400, 10176),
            (429, 10210),
            (400, 10005),
        ] {
            let Refusal::Failed(error) = refusal(reply(code, err_code), "S") else {
                panic!("{err_code} is a failure");
            };
            assert!(error.is_retryable(), "{err_code}: {error}");
        }
        assert!(matches!(refusal(reply(400, 10054), "S"), Refusal::TooLarge));
        for (code, err_code) in [(400, 10174), (404, 10059), (400, 10003)] {
            let Refusal::Failed(error) = refusal(reply(code, err_code), "S") else {
                panic!("{err_code} is a failure");
            };
            assert!(!error.is_retryable(), "{err_code}: {error}");
        }
    }

    #[test]
    fn client_errors_carrying_a_jetstream_code_are_classified_by_it() {
        let parse = |json: &str| -> async_nats::jetstream::Error {
            serde_json::from_str(json).expect("a JetStream error")
        };
        let unavailable = parse(r#"{"code":503,"err_code":10008,"description":"unavailable"}"#);
        assert!(client(unavailable).is_retryable());
        let missing = parse(r#"{"code":404,"err_code":10059,"description":"stream not found"}"#);
        assert!(!client(missing).is_retryable());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(client(io).is_retryable());
    }
}
