//! A three-node `nats-server` JetStream cluster on loopback for a test, as
//! the production overlay runs one: each node its own process, storage
//! folder, client port and cluster port, routed to the other two. A node can
//! be stopped (SIGKILL) and started again, and a stream's leader moved.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::Value;

use crate::nats::{NatsServer, StoredMessage, free_port};
use shared_events::EventsConfig;

/// Three JetStream nodes forming one cluster; killed when dropped.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three nodes and waits until JetStream has a meta leader (the
    /// cluster accepts stream requests).
    pub async fn start() -> Self {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let name = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let extra = [
                "-n".to_owned(),
                format!("n{i}"),
                "--cluster_name".to_owned(),
                name.clone(),
                "-cluster".to_owned(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "-routes".to_owned(),
                routes.clone(),
            ];
            nodes.push(NatsServer::new(free_port(), extra.to_vec()));
        }
        for node in &mut nodes {
            node.resume().await;
        }
        let cluster = Self { nodes };
        cluster.wait_until_ready().await;
        cluster
    }

    /// Every node's URL, as one comma list (what `NATS_URL` takes).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// As [`NatsServer::events_config`], against every node, with streams of
    /// three replicas.
    pub fn events_config(&self) -> EventsConfig {
        EventsConfig {
            nats_url: Some(self.url()),
            stream_replicas: 3,
            ..self.nodes[0].events_config()
        }
    }

    /// Node `i` (0-2): stop and resume it.
    pub fn node(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }

    /// A JetStream context on a running node.
    pub async fn jetstream(&self) -> jetstream::Context {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        node.jetstream().await
    }

    /// Every message in `stream`, in order: the longest answer of the
    /// running nodes (a node just started again may not serve JetStream yet).
    pub async fn messages(&self, stream: &str) -> Vec<StoredMessage> {
        let mut longest = Vec::new();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let messages = node.messages(stream).await;
            if messages.len() > longest.len() {
                longest = messages;
            }
        }
        longest
    }

    /// The index of the node that leads `stream`, once it has a leader
    /// (waits up to 10 s: an election follows each move).
    pub async fn stream_leader(&self, stream: &str) -> Option<usize> {
        let jetstream = self.jetstream().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut info) = jetstream.get_stream(stream).await
                && let Ok(info) = info.info().await
                && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.as_deref())
            {
                return leader.strip_prefix('n')?.parse().ok();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Asks `stream`'s leader to step down (JetStream elects another),
    /// again while the stream has no leader yet (a moment after the last
    /// move) for up to 10 s; returns whether the cluster agreed.
    pub async fn step_down(&self, stream: &str) -> bool {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        let Ok(client) = async_nats::connect(node.url()).await else {
            return false;
        };
        let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(reply) = client.request(subject.clone(), "".into()).await
                && serde_json::from_slice::<Value>(&reply.payload)
                    .is_ok_and(|r| r["success"] == true)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Asks for the account's JetStream information (raw: the client's typed
    /// answer does not parse every server version's) until it is not an error.
    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = async_nats::connect(self.nodes[0].url())
            .await
            .expect("connected to the first node");
        loop {
            let answer = client.request("$JS.API.INFO", "".into()).await;
            let answer = answer.map(|reply| serde_json::from_slice::<Value>(&reply.payload));
            if let Ok(Ok(info)) = &answer
                && info.get("error").is_none()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the JetStream cluster elected no leader: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
