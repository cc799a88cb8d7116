//! The pub/sub link, by deployment. The task sees one [`Link`]: subscribe,
//! unsubscribe, ping, and the channel of the next message (or the news
//! that the link is lost).
//!
//! - **Standalone**: a RESP2/RESP3 pub/sub connection to the server,
//!   `SUBSCRIBE`, matched by the scripts' `PUBLISH`.
//! - **Sentinel**: the same, to the master the sentinels name at each dial,
//!   so a link lost in a failover comes back on the new master.
//! - **Cluster**: sharded pub/sub. Each release channel lives in its lock
//!   key's slot, the scripts `SPUBLISH` on it, and the link is a RESP3
//!   cluster connection that `SSUBSCRIBE`s each channel on the master of
//!   its slot. redis-rs reports a node connection that drops as a
//!   `Disconnection` push; the task then treats the whole link as lost and
//!   dials again, which subscribes every channel on the current topology
//!   and re-checks every watched record, as after any outage.

use redis::aio::{PubSubSink, PubSubStream};
#[cfg(feature = "redis-cluster")]
use redis::cluster_async::ClusterConnection;
use redis::RedisResult;

/// Opens links.
pub(in crate::backend::redis) enum Dialer {
    /// One server.
    Server(redis::Client),
    /// The current master of a Sentinel deployment.
    #[cfg(feature = "redis-sentinel")]
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
    /// A cluster, reached through any of these nodes.
    #[cfg(feature = "redis-cluster")]
    Cluster(Vec<redis::ConnectionInfo>),
}

impl Dialer {
    /// Connects a new link, with nothing subscribed yet.
    pub(in crate::backend::redis) async fn dial(&self) -> RedisResult<Link> {
        match self {
            Dialer::Server(client) => Link::single(client).await,
            #[cfg(feature = "redis-sentinel")]
            Dialer::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                Link::single(&client).await
            }
            #[cfg(feature = "redis-cluster")]
            Dialer::Cluster(nodes) => {
                let (pushes_in, pushes) = tokio::sync::mpsc::unbounded_channel();
                let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(pushes_in)
                    .build()?;
                let conn = client.get_async_connection().await?;
                Ok(Link::Sharded { conn, pushes })
            }
        }
    }
}

/// What a link heard.
pub(super) enum Heard {
    /// A message on this channel.
    Message(Vec<u8>),
    /// The server ended this channel's subscription on its own (on a
    /// cluster: its slot moved to another node), or confirmed an
    /// unsubscribe we sent. Only sharded (cluster) links report it.
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    Unsubscribed(Vec<u8>),
    /// The link is lost: messages may have been missed.
    Lost,
}

/// A live pub/sub link.
pub(in crate::backend::redis) enum Link {
    Single {
        sink: PubSubSink,
        stream: PubSubStream,
    },
    #[cfg(feature = "redis-cluster")]
    Sharded {
        conn: ClusterConnection,
        pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    },
}

impl Link {
    async fn single(client: &redis::Client) -> RedisResult<Link> {
        let (sink, stream) = client.get_async_pubsub().await?.split();
        Ok(Link::Single { sink, stream })
    }

    /// Subscribes `channels`: one command on one server; on a cluster one
    /// `SSUBSCRIBE` per channel (each may live on another node), sent
    /// together.
    pub(in crate::backend::redis) async fn subscribe(
        &mut self,
        channels: &[&[u8]],
    ) -> RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match self {
            Link::Single { sink, .. } => sink.subscribe(channels).await,
            #[cfg(feature = "redis-cluster")]
            Link::Sharded { conn, .. } => {
                let each = channels.iter().map(|channel| {
                    let mut conn = conn.clone();
                    async move { conn.ssubscribe(*channel).await }
                });
                futures::future::try_join_all(each).await.map(drop)
            }
        }
    }

    pub(super) async fn unsubscribe(&mut self, channel: &[u8]) -> RedisResult<()> {
        match self {
            Link::Single { sink, .. } => sink.unsubscribe(channel).await,
            #[cfg(feature = "redis-cluster")]
            Link::Sharded { conn, .. } => conn.sunsubscribe(channel).await,
        }
    }

    pub(in crate::backend::redis) async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Link::Single { sink, .. } => sink.ping::<redis::Value>().await.map(drop),
            #[cfg(feature = "redis-cluster")]
            Link::Sharded { conn, .. } => redis::cmd("PING")
                .query_async::<redis::Value>(conn)
                .await
                .map(drop),
        }
    }

    /// The next message's payload, for the near cache's change feed on one
    /// server; `None` when the link is lost. (A cluster link has no feed:
    /// near caches are refused on a cluster.)
    pub(in crate::backend::redis) async fn next_payload(&mut self) -> Option<Vec<u8>> {
        match self {
            Link::Single { stream, .. } => futures::StreamExt::next(stream)
                .await
                .map(|message| message.get_payload_bytes().to_vec()),
            #[cfg(feature = "redis-cluster")]
            Link::Sharded { .. } => None,
        }
    }

    /// What the link hears next.
    pub(super) async fn next(&mut self) -> Heard {
        match self {
            // Channel names are bytes (they start with 0xFF), never
            // `get_channel_name()`, which turns them into "?".
            Link::Single { stream, .. } => match futures::StreamExt::next(stream).await {
                Some(message) => {
                    Heard::Message(message.get_channel::<Vec<u8>>().unwrap_or_default())
                }
                None => Heard::Lost,
            },
            #[cfg(feature = "redis-cluster")]
            Link::Sharded { pushes, .. } => loop {
                let Some(push) = pushes.recv().await else {
                    return Heard::Lost;
                };
                let channel = || {
                    push.data
                        .first()
                        .cloned()
                        .and_then(bytes)
                        .unwrap_or_default()
                };
                match push.kind {
                    redis::PushKind::SMessage => return Heard::Message(channel()),
                    redis::PushKind::SUnsubscribe => return Heard::Unsubscribed(channel()),
                    redis::PushKind::Disconnection => return Heard::Lost,
                    // Subscription confirmations, including redis-rs's own
                    // resubscriptions after a reconnect.
                    _ => continue,
                }
            },
        }
    }
}

#[cfg(feature = "redis-cluster")]
fn bytes(value: redis::Value) -> Option<Vec<u8>> {
    match value {
        redis::Value::BulkString(bytes) => Some(bytes),
        _ => None,
    }
}
