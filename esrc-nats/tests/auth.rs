//! Connecting to NATS servers that want credentials: a token, an nkey, a credentials file
//! (an operator, an account and a user made here), and TLS with client certificates. Each
//! test starts a nats-server of its own (`ESRC_NATS_SERVER`) configured for it; the TLS
//! ones use the certificates `.ci/tls-servers` makes (`ESRC_TLS_*`). Secrets never show
//! in an error or in the builder's `Debug`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use esrc_conformance::backend_unavailable;
use esrc_core::backend::StoreOptions;
use esrc_core::{Error, Expected, NewEvent, Publish};
use esrc_nats::NatsStore;
use nkeys::KeyPair;
use serde_json::json;
use uuid::Uuid;

/// A nats-server started for one test, killed when dropped.
struct Server {
    port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts nats-server with `config` (JetStream and the port are added), or `None` when
/// no binary is configured.
async fn server(config: &str) -> Option<Server> {
    let Ok(binary) = std::env::var("ESRC_NATS_SERVER") else {
        return backend_unavailable("ESRC_NATS_SERVER (a nats-server ≥ 2.12 binary) is not set");
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("esrc-auth-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("server.conf");
    let store = dir.join("jetstream");
    std::fs::write(
        &file,
        format!("listen: 127.0.0.1:{port}\njetstream {{ store_dir: {store:?} }}\n{config}\n"),
    )
    .unwrap();
    let log = dir.join("server.log");
    let child = tokio::process::Command::new(binary)
        .arg("-c")
        .arg(&file)
        .arg("-l")
        .arg(&log)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(Server {
                port,
                dir,
                _child: child,
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    panic!("nats-server did not start with:\n{config}\n{log}");
}

impl Server {
    fn url(&self) -> String {
        format!("nats://localhost:{}", self.port)
    }

    /// Writes `content` to a file of this server's directory.
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

/// Connects with `options` by name (as a URL's query string gives them) and appends once.
async fn open(url: &str, options: &[(&str, &str)]) -> Result<NatsStore, Error> {
    let store = NatsStore::builder()
        .connect_timeout(Duration::from_secs(3))
        .with_options(options.iter().copied())?
        .connect(url)
        .await?;
    store
        .publish(
            "Tab",
            Uuid::now_v7(),
            Expected::NoStream,
            vec![NewEvent::from_payload(1, "{}")],
        )
        .await?;
    Ok(store)
}

/// The error's message and its causes, as a `caused by:` printer shows them.
fn everything_printed(error: &Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(next) = cause {
        text.push_str(&format!("\ncaused by: {next}"));
        cause = next.source();
    }
    text
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test]
async fn a_token_opens_the_store_and_never_shows() {
    const TOKEN: &str = "t0ken-that-must-not-show";
    let Some(server) = server(&format!("authorization {{ token: \"{TOKEN}\" }}")).await else {
        return;
    };
    open(&server.url(), &[("token", TOKEN)]).await.unwrap();

    let refused = open(&server.url(), &[("token", "a-wrong-t0ken")])
        .await
        .expect_err("a wrong token");
    let printed = everything_printed(&refused);
    assert!(!printed.contains("a-wrong-t0ken"), "{printed}");
    assert!(printed.contains("`token`"), "says what to check: {printed}");
    assert!(!refused.is_retryable(), "{printed}");
    let builder = NatsStore::builder().with_option("token", TOKEN).unwrap();
    assert!(!format!("{builder:?}").contains(TOKEN));
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test]
async fn an_nkey_seed_opens_the_store_and_never_shows() {
    let user = KeyPair::new_user();
    let seed = user.seed().unwrap();
    let config = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}",
        user.public_key()
    );
    let Some(server) = server(&config).await else {
        return;
    };
    open(&server.url(), &[("nkey", &seed)]).await.unwrap();

    let stranger = KeyPair::new_user().seed().unwrap();
    let refused = open(&server.url(), &[("nkey", &stranger)])
        .await
        .expect_err("a user the server does not know");
    let printed = everything_printed(&refused);
    assert!(!printed.contains(&stranger), "{printed}");
    let builder = NatsStore::builder().with_option("nkey", &seed).unwrap();
    assert!(!format!("{builder:?}").contains(&seed));
}

/// A JWT of `claims` about `subject`, issued and signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, nats: serde_json::Value) -> String {
    let claims = json!({
        "jti": Uuid::new_v4().simple().to_string().to_uppercase(),
        "iat": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        "iss": issuer.public_key(),
        "name": subject,
        "sub": subject,
        "nats": nats,
    });
    let header = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature))
}

/// A server in operator mode (an operator, its system account and one account with
/// JetStream, made here), and the content of a credentials file for a user of that account.
fn operator_and_user() -> (String, String) {
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let system = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        json!({ "type": "operator", "version": 2 }),
    );
    let unlimited = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        json!({ "type": "account", "version": 2, "limits": unlimited }),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        json!({ "type": "account", "version": 2 }),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        json!({ "type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1 }),
    );
    let config = format!(
        "operator: {operator_jwt}\nsystem_account: {system}\nresolver: MEMORY\n\
         resolver_preload: {{ {account}: {account_jwt}, {system}: {system_jwt} }}",
        account = account.public_key(),
        system = system.public_key(),
    );
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().unwrap()
    );
    (config, creds)
}

#[esrc_conformance::requires(nats_server)]
#[tokio::test]
async fn a_credentials_file_opens_the_store_and_errors_name_the_file_only() {
    let (config, creds) = operator_and_user();
    let Some(server) = server(&config).await else {
        return;
    };
    let path = server.file("app.creds", &creds);
    open(&server.url(), &[("creds", path.to_str().unwrap())])
        .await
        .unwrap();

    let missing = server.dir.join("missing.creds");
    let error = open(&server.url(), &[("creds", missing.to_str().unwrap())])
        .await
        .expect_err("no such file");
    assert!(error.to_string().contains("missing.creds"), "{error}");

    let garbage = server.file("garbage.creds", "not-a-credential-but-a-s3cret");
    let error = open(&server.url(), &[("creds", garbage.to_str().unwrap())])
        .await
        .expect_err("not a credentials file");
    let printed = everything_printed(&error);
    assert!(printed.contains("garbage.creds"), "{printed}");
    assert!(
        !printed.contains("s3cret"),
        "never the file's content: {printed}"
    );

    let error = open(&server.url(), &[]).await.expect_err("no credentials");
    assert!(everything_printed(&error).contains("`creds`"), "{error}");
}

/// The certificates of `.ci/tls-servers`: CA, wrong CA, server cert and key, client cert
/// and key.
fn certificates() -> Option<[PathBuf; 6]> {
    let vars = [
        "ESRC_TLS_CA",
        "ESRC_TLS_WRONG_CA",
        "ESRC_TLS_SERVER_CERT",
        "ESRC_TLS_SERVER_KEY",
        "ESRC_TLS_CLIENT_CERT",
        "ESRC_TLS_CLIENT_KEY",
    ];
    let paths: Vec<PathBuf> = vars
        .iter()
        .filter_map(|var| std::env::var_os(var).map(PathBuf::from))
        .collect();
    match <[PathBuf; 6]>::try_from(paths) {
        Ok(paths) => Some(paths),
        Err(_) => {
            backend_unavailable("ESRC_TLS_* (the certificates of .ci/tls-servers) are not set")
        }
    }
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[esrc_conformance::requires(nats_server, env = "ESRC_TLS_CA")]
#[tokio::test]
async fn tls_with_a_client_certificate_and_the_servers_ca() {
    let Some([ca, wrong, cert, key, client_cert, client_key]) = certificates() else {
        return;
    };
    let config =
        format!("tls {{ cert_file: {cert:?}, key_file: {key:?}, ca_file: {ca:?}, verify: true }}");
    let Some(server) = server(&config).await else {
        return;
    };
    let mutual = [
        ("tls_ca", text(&ca)),
        ("tls_cert", text(&client_cert)),
        ("tls_key", text(&client_key)),
    ];
    open(&server.url(), &mutual).await.unwrap();

    open(&server.url(), &[("tls_ca", text(&ca))])
        .await
        .expect_err("the server verifies clients");

    let error = open(
        &server.url(),
        &[
            ("tls_ca", text(&wrong)),
            ("tls_cert", text(&client_cert)),
            ("tls_key", text(&client_key)),
        ],
    )
    .await
    .expect_err("the server's certificate is not signed by that CA");
    let printed = everything_printed(&error);
    assert!(printed.contains("tls_ca"), "says what to check: {printed}");
    assert!(
        !error.is_retryable(),
        "a retry cannot fix a certificate: {printed}"
    );

    let error = open(&server.url(), &[("tls_cert", text(&client_cert))])
        .await
        .expect_err("a certificate without its key");
    assert!(matches!(error, Error::InvalidConfig { .. }), "{error}");
}

#[esrc_conformance::requires(nats_server, env = "ESRC_TLS_CA")]
#[tokio::test]
async fn tls_first_reaches_a_server_that_wants_the_handshake_first() {
    let Some([ca, _, cert, key, _, _]) = certificates() else {
        return;
    };
    let config = format!("tls {{ cert_file: {cert:?}, key_file: {key:?}, handshake_first: true }}");
    let Some(server) = server(&config).await else {
        return;
    };
    open(
        &server.url(),
        &[("tls_ca", text(&ca)), ("tls_first", "true")],
    )
    .await
    .unwrap();
}
