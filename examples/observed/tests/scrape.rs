//! The example serves Prometheus's text format while it runs, and its counters move.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on (free when asked; the example takes it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /metrics`, if the server answers.
fn scrape(port: u16) -> Option<String> {
    let mut connection = TcpStream::connect(("127.0.0.1", port)).ok()?;
    connection
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        connection,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    connection.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The value of the sample `name{labels}` (labels as Prometheus prints them).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Kills the example when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_metrics_endpoint_shows_the_counters_moving() {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_observed"))
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let appends =
        r#"esrc_append_duration_seconds_count{store="memory",category="Tab",outcome="stored"}"#;
    let projected = r#"esrc_projector_events_total{projection="open-tabs"}"#;
    let mut read = |wanted: &dyn Fn(f64, f64) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = running.0.try_wait().unwrap() {
                panic!("the example ended: {status}");
            }
            let found = scrape(port)
                .and_then(|body| Some((sample(&body, appends)?, sample(&body, projected)?)));
            if let Some((appended, projected)) = found {
                if wanted(appended, projected) {
                    return (appended, projected);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no such scrape within a minute: {found:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (appended, projected) = read(&|appended, projected| appended > 0.0 && projected > 0.0);
    // Still running a moment later, and counting: more appends, more events projected.
    read(&|later, later_projected| later > appended && later_projected > projected);
    let body = scrape(port).unwrap();
    assert!(
        body.contains("esrc_append_duration_seconds_count"),
        "the append durations are a summary: {body}"
    );
    assert!(body.contains(r#"esrc_projector_lag_seconds{projection="open-tabs"}"#));
}
