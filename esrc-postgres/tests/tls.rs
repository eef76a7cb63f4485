//! TLS to PostgreSQL, against a server that refuses connections without it (`.ci/run`
//! starts one with certificates it makes: `.ci/tls-servers`). The variables:
//! `ESRC_POSTGRES_TLS_URL` (the server, by the name its certificate holds), `ESRC_TLS_CA`
//! (the CA that signed it) and `ESRC_TLS_WRONG_CA` (one that did not).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esrc_core::backend::StoreOptions;
use esrc_core::{Expected, NewEvent, Publish};
use esrc_postgres::PgStore;
use uuid::Uuid;

/// The server's URL and the two CAs, or `None` (having said why) when they are not set.
fn tls_server() -> Option<(String, String, String)> {
    let vars = ["ESRC_POSTGRES_TLS_URL", "ESRC_TLS_CA", "ESRC_TLS_WRONG_CA"];
    let values: Vec<String> = vars
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .collect();
    match <[String; 3]>::try_from(values) {
        Ok([url, ca, wrong]) => Some((url, ca, wrong)),
        Err(_) => esrc_conformance::backend_unavailable(
            "ESRC_POSTGRES_TLS_URL, ESRC_TLS_CA and ESRC_TLS_WRONG_CA are not all set",
        ),
    }
}

/// Connects with the options by name (as a URL's query string gives them), checks that
/// the session is encrypted, and appends once.
async fn connect_over_tls(
    url: &str,
    options: &[(&str, &str)],
) -> Result<PgStore, esrc_core::Error> {
    let schema = format!("tls_{}", Uuid::new_v4().simple());
    let store = PgStore::builder()
        .with_options(options.iter().copied())?
        .schema(schema.clone())
        .migrate(true)
        .connect(url)
        .await?;
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(encrypted, "the session is not encrypted");
    store
        .publish(
            "Tab",
            Uuid::now_v7(),
            Expected::NoStream,
            vec![NewEvent::from_payload(1, "{}")],
        )
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    Ok(store)
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_TLS_URL")]
#[tokio::test]
async fn sslmode_require_encrypts_without_checking_the_certificate() {
    let Some((url, _, _)) = tls_server() else {
        return;
    };
    connect_over_tls(&url, &[("sslmode", "require")])
        .await
        .unwrap();
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_TLS_URL")]
#[tokio::test]
async fn verify_full_checks_the_ca_and_the_host_name() {
    let Some((url, ca, _)) = tls_server() else {
        return;
    };
    for mode in ["verify-ca", "verify-full"] {
        connect_over_tls(&url, &[("sslmode", mode), ("sslrootcert", &ca)])
            .await
            .unwrap_or_else(|error| panic!("{mode}: {error}"));
    }
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_TLS_URL")]
#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_in_one_line_naming_the_host() {
    let Some((url, _, wrong)) = tls_server() else {
        return;
    };
    let error = connect_over_tls(&url, &[("sslmode", "verify-full"), ("sslrootcert", &wrong)])
        .await
        .expect_err("the server's certificate is not signed by that CA");
    let text = error.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.contains("localhost:"), "names the host: {text}");
    assert!(text.contains("sslrootcert"), "says what to check: {text}");
    assert!(!error.is_retryable(), "a retry cannot fix a certificate");
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_TLS_URL")]
#[tokio::test]
async fn without_tls_the_server_refuses_and_prefer_uses_it() {
    let Some((url, _, _)) = tls_server() else {
        return;
    };
    connect_over_tls(&url, &[("sslmode", "disable")])
        .await
        .expect_err("this server takes only TLS connections");
    // `prefer` (sqlx's default) encrypts when the server offers it.
    connect_over_tls(&url, &[("sslmode", "prefer")])
        .await
        .unwrap();
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_TLS_URL")]
#[tokio::test]
async fn a_url_with_tls_options_opens_the_store() {
    let Some((url, ca, _)) = tls_server() else {
        return;
    };
    let url = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let store = PgStore::connect(&url).await.unwrap();
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(encrypted);
}

#[esrc_conformance::requires(env = "ESRC_POSTGRES_TLS_URL")]
#[tokio::test]
async fn a_client_certificate_logs_in_the_role_it_names() {
    let Some((url, ca, _)) = tls_server() else {
        return;
    };
    let (Ok(cert), Ok(key)) = (
        std::env::var("ESRC_TLS_CLIENT_CERT"),
        std::env::var("ESRC_TLS_CLIENT_KEY"),
    ) else {
        esrc_conformance::backend_unavailable::<()>(
            "ESRC_TLS_CLIENT_CERT and ESRC_TLS_CLIENT_KEY are not set",
        );
        return;
    };
    // The server lets `esrc_client` in by its certificate alone (`cert` in pg_hba.conf).
    let url = url.replacen("postgres@", "esrc_client@", 1);
    let with_certificate = [
        ("sslmode", "verify-full"),
        ("sslrootcert", ca.as_str()),
        ("sslcert", cert.as_str()),
        ("sslkey", key.as_str()),
    ];
    connect_over_tls(&url, &with_certificate).await.unwrap();
    connect_over_tls(&url, &with_certificate[..2])
        .await
        .expect_err("without its certificate the role is refused");
}
