//! A three-node nats-server cluster of the test's own, on loopback, whose nodes the test
//! can kill (`SIGKILL`) and restart. The binary comes from `ESRC_NATS_SERVER`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use esrc_conformance::backend_unavailable;
use uuid::Uuid;

/// One node: its ports and, while it runs, its process.
struct Node {
    name: String,
    port: u16,
    cluster_port: u16,
    child: Option<tokio::process::Child>,
}

/// Three nats-server processes forming one JetStream cluster; killed when dropped.
pub struct Cluster {
    binary: String,
    dir: PathBuf,
    nodes: Vec<Node>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Cluster {
    /// Starts a cluster, or says why it cannot (no `ESRC_NATS_SERVER`).
    pub async fn start() -> Option<Cluster> {
        let Ok(binary) = std::env::var("ESRC_NATS_SERVER") else {
            return backend_unavailable(
                "ESRC_NATS_SERVER (a nats-server ≥ 2.12 binary to run a cluster) is not set",
            );
        };
        let dir = std::env::temp_dir().join(format!("esrc-cluster-{}", Uuid::new_v4().simple()));
        let nodes = (1..=3)
            .map(|n| Node {
                name: format!("n{n}"),
                port: free_port(),
                cluster_port: free_port(),
                child: None,
            })
            .collect();
        let mut cluster = Cluster { binary, dir, nodes };
        for node in 0..3 {
            cluster.spawn(node);
        }
        for node in 0..3 {
            cluster.wait_for_port(node).await;
        }
        cluster.wait_for_jetstream().await;
        Some(cluster)
    }

    fn spawn(&mut self, node: usize) {
        let routes = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != node)
            .map(|(_, other)| format!("nats://127.0.0.1:{}", other.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let this = &self.nodes[node];
        let store_dir = self.dir.join(&this.name);
        let child = tokio::process::Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "--server_name", &this.name])
            .args(["-p", &this.port.to_string()])
            .args(["--cluster_name", "esrc"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", this.cluster_port),
            ])
            .args(["--routes", &routes])
            .arg("-sd")
            .arg(&store_dir)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.nodes[node].child = Some(child);
    }

    /// Every node's client URL, comma-separated: what a client of the cluster is given.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills a node with `SIGKILL`: no goodbye to its peers, nothing flushed.
    pub async fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts a killed node again on its ports and store directory.
    pub async fn restart(&mut self, node: usize) {
        assert!(self.nodes[node].child.is_none(), "node {node} is running");
        self.spawn(node);
        self.wait_for_port(node).await;
    }

    async fn wait_for_port(&self, node: usize) {
        let port = self.nodes[node].port;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "node {node} does not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client connected to every node.
    pub async fn client(&self) -> async_nats::Client {
        let servers = self
            .nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.port).parse().unwrap())
            .collect::<Vec<async_nats::ServerAddr>>();
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .unwrap()
    }

    /// Waits until the cluster has elected its JetStream meta leader (within a second of
    /// the start, on loopback). A request sent before that gets no answer at all: asked
    /// with the default timeout (10 s), each start of a cluster took 10 s.
    async fn wait_for_jetstream(&self) {
        let client = self.client().await;
        let mut context = jetstream::new(client);
        context.set_timeout(Duration::from_millis(250));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match context.query_account().await {
                Ok(_) => return,
                Err(error) => {
                    assert!(Instant::now() < deadline, "no JetStream cluster: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The node leading `stream` (retrying while the stream has no leader).
    pub async fn leader_of(&self, context: &jetstream::Context, stream: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut handle) = context.get_stream(stream).await {
                if let Ok(info) = handle.info().await {
                    let leader = info.cluster.as_ref().and_then(|c| c.leader.clone());
                    if let Some(index) =
                        leader.and_then(|name| self.nodes.iter().position(|node| node.name == name))
                    {
                        return index;
                    }
                }
            }
            assert!(Instant::now() < deadline, "stream {stream} has no leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
