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
        "W1 create: read/load",
        "W2 read + snapshot every 100",
        "W1 create, again",
        "W4 concurrent (16 tasks), again",
    ] {
        assert!(
            names.iter().any(|name| name.starts_with(expected)),
            "{expected} missing: {names:?}"
        );
    }
    assert!(
        lines
            .iter()
            // A rate is positive; the memory line may be 0 (the allocator reused pages).
            .all(|line| line.esrc.is_finite() && (line.esrc > 0.0 || line.unit == "bytes")),
        "{lines:?}"
    );
}
