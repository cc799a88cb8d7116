//! Opening the backend: two connection pools per server list, one for
//! everything but lock creates and one for lock creates, whose exchanges
//! outlast the call bound (see the `create` module).

use std::sync::Arc;
use std::time::Duration;

use memcache::exp::{AsyncMetaClient, MetaClientBuilder};

use super::client::Client;
use super::create::{Creates, CREATE_PATIENCE};
use super::watch::Schedule;
use super::{MemcachedBackend, MemcachedConfig, KIND};
use crate::{Error, Result};

impl MemcachedBackend {
    pub(super) async fn connect(config: MemcachedConfig) -> Result<MemcachedBackend> {
        let servers = config.checked_servers()?;
        // Lock creates get a pool of their own, whose exchanges outlast the
        // call bound (see the `create` module).
        let connecting = async {
            let meta = pool(&config, config.timeout)
                .connect_multiple_async(servers.clone())
                .await?;
            let creates = pool(&config, CREATE_PATIENCE)
                .connect_multiple_async(servers.clone())
                .await?;
            Ok::<_, memcache::exp::Error>((meta, creates))
        };
        let (meta, creates) = match tokio::time::timeout(config.timeout, connecting).await {
            Ok(Ok(clients)) => clients,
            Ok(Err(error)) => return Err(Error::backend(KIND, "connect", error)),
            Err(_) => {
                return Err(Error::BackendTimeout {
                    backend: KIND,
                    operation: "connect",
                    after: config.timeout,
                })
            }
        };
        tracing::debug!(?servers, "memcached backend ready");
        let remembered = Arc::default();
        let creates = Creates {
            client: Client {
                meta: creates,
                timeout: config.timeout,
            },
            remembered: Arc::clone(&remembered),
        };
        Ok(MemcachedBackend {
            client: Client {
                meta,
                timeout: config.timeout,
            },
            servers,
            polls: Schedule::new(config.first_poll, config.poll_interval),
            max_value_size: config.max_value_size,
            creates,
            remembered,
        })
    }
}

/// A client configuration: `config`'s pool, with `io_timeout` for each
/// exchange.
fn pool(config: &MemcachedConfig, io_timeout: Duration) -> MetaClientBuilder {
    AsyncMetaClient::builder()
        .max_connections(Some(config.max_connections))
        .max_idle(config.max_connections)
        .io_timeout(Some(io_timeout))
        .connect_timeout(Some(config.timeout))
}
