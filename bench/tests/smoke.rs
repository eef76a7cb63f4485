//! Every workload runs (at a tiny size) on the memory store beside its baseline.

#![allow(clippy::unwrap_used)]

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs() {
    let lines = esrc_bench::workloads::smoke(esrc_memory::MemoryStore::new())
        .await
        .unwrap();
    let names: Vec<&str> = lines.iter().map(|line| line.workload.as_str()).collect();
    for expected in [
        "W1",
        "W2",
        "W3",
        "W4",
        "W5",
        "W6",
        "W7",
        "W8",
        "W8 category replay time",
        "W9 read + conditional append, 16 writers, one tag",
        "W9 tag query time",
        "W1 create: read/load",
        "W2 read + snapshot every 100",
        "W1 create, again",
        "W4 concurrent (16 tasks), again",
        "W3 load vs plain messages",
        "W6 replay vs plain messages",
    ] {
        assert!(
            names.iter().any(|name| name.starts_with(expected)),
            "{expected} missing: {names:?}"
        );
    }
    assert!(
        lines
            .iter()
            // A rate is positive; the memory line may be 0 (the allocator reused pages), and
            // so may the conflicts of W9 (the memory store decides under one lock).
            .all(|line| line.esrc.is_finite()
                && (line.esrc > 0.0 || line.unit == "bytes" || line.unit == "per append")),
        "{lines:?}"
    );
}

/// On NATS, the stored-bytes lines measure what they say: esrc stores at least what its
/// contract asks of the server, which is more than a plain publish.
#[esrc_conformance::requires(env = "ESRC_NATS_URL")]
#[tokio::test]
async fn stored_bytes_are_measured_on_nats() {
    let url = std::env::var("ESRC_NATS_URL").unwrap();
    let name = uuid::Uuid::new_v4().simple();
    let store = esrc_nats::NatsStore::builder()
        .stream(format!("B{name}"))
        .prefix(format!("b{name}"))
        .build(async_nats::connect(url).await.unwrap())
        .await
        .unwrap();
    let lines = esrc_bench::workloads::nats_stored_bytes(&store, 20).await;
    store.destroy().await.unwrap();
    let lines = lines.unwrap();
    let [esrc, contract] = [&lines[0], &lines[1]];
    let plain = esrc.raw.unwrap();
    assert_eq!(contract.raw, Some(plain), "{lines:?}");
    assert!(
        plain > 76.0,
        "a message holds at least its payload: {lines:?}"
    );
    assert!(
        contract.esrc > plain + 36.0,
        "an id and an expectation: {lines:?}"
    );
    assert!(esrc.esrc >= contract.esrc, "{lines:?}");
    let over = &lines[2];
    assert_eq!(
        (over.esrc, over.raw),
        (esrc.esrc, Some(contract.esrc)),
        "{lines:?}"
    );
}

/// `--only` runs the workloads it names (in any case), and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_workloads_named_run() {
    let only = ["w3".to_owned(), "W8".to_owned()];
    let lines = esrc_bench::workloads::run(
        esrc_memory::MemoryStore::new(),
        esrc_bench::raw::RawMemory::default(),
        esrc_bench::workloads::Sizes::TINY,
        1_000.0,
        None,
        None,
        &only,
    )
    .await
    .unwrap();
    let ran = |prefix: &str| lines.iter().any(|line| line.workload.starts_with(prefix));
    assert!(ran("W3") && ran("W8"), "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| line.workload.starts_with("W3") || line.workload.starts_with("W8")),
        "{lines:?}"
    );
}

/// On NATS, the like-with-like probe reads every category whole with every reader and
/// reports what it delivered: esrc's messages are larger than plain ones, one message
/// per append delivers fewer bytes per event, a stream of its own holds the same events.
#[esrc_conformance::requires(env = "ESRC_NATS_URL")]
#[tokio::test]
async fn the_layout_probe_reads_every_category_on_nats() {
    let url = std::env::var("ESRC_NATS_URL").unwrap();
    let name = uuid::Uuid::new_v4().simple();
    let (stream, prefix) = (format!("B{name}"), format!("b{name}"));
    let client = async_nats::connect(url).await.unwrap();
    let store = esrc_nats::NatsStore::builder()
        .stream(stream.clone())
        .prefix(prefix.clone())
        .build(client.clone())
        .await
        .unwrap();
    let lines = esrc_bench::layout::nats_layout(client, &store, &stream, &prefix, 3).await;
    store.destroy().await.unwrap();
    let lines = lines.unwrap();
    let delivered = |reader: &str| {
        lines
            .iter()
            .find(|line| line.workload == format!("L {reader}: delivered"))
            .unwrap_or_else(|| panic!("no line for {reader}: {lines:?}"))
            .esrc
    };
    let plain = delivered("fetch, no header");
    assert!(delivered("fetch, esrc's messages") > plain, "{lines:?}");
    assert!(
        delivered("fetch, one message per append") < plain,
        "{lines:?}"
    );
    assert!(delivered("fetch, one header") > plain, "{lines:?}");
    assert!(
        lines
            .iter()
            .filter(|line| line.unit == "events/s")
            .all(|line| line.esrc > 0.0 && line.esrc.is_finite()),
        "{lines:?}"
    );
}
