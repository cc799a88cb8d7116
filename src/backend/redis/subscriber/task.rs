//! The pub/sub task: owns the link, subscribes and unsubscribes in the
//! order watches come and go, wakes watchers on each message, and
//! reconnects with backoff when the link drops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::link::{Dialer, Heard, Link};
use super::{Command, BACKOFF_MAX, BACKOFF_MIN, KEEPALIVE, OPERATION};
use crate::backend::redis::conn::{Connections, KIND};
use crate::{Error, Result};

/// The task's state: the link and what is subscribed on it.
pub(super) struct Task {
    dialer: Arc<Dialer>,
    conns: Arc<Connections>,
    /// Release channel → the record it is about and its watches.
    channels: HashMap<Vec<u8>, Watched>,
    link: Option<Link>,
    backoff: Duration,
    /// When the link may next be dialled after a failure.
    retry_at: Option<Instant>,
}

struct Watched {
    /// The lock record, or a value's fill lease record.
    record: Vec<u8>,
    watchers: Vec<(u64, Arc<Notify>)>,
}

impl Watched {
    fn wake(&self) {
        for (_, wake) in &self.watchers {
            wake.notify_waiters();
        }
    }
}

enum Event {
    Command(Option<Command>),
    Heard(Heard),
    Keepalive,
    Retry,
}

impl Task {
    pub(super) fn new(dialer: Arc<Dialer>, conns: Arc<Connections>) -> Self {
        Task {
            dialer,
            conns,
            channels: HashMap::new(),
            link: None,
            backoff: BACKOFF_MIN,
            retry_at: None,
        }
    }

    fn timeout(&self) -> Duration {
        self.conns.timeout()
    }

    pub(super) async fn run(mut self, mut commands: UnboundedReceiver<Command>) {
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = self.next_event(&mut commands, &mut keepalive).await;
            if !self.handle(event).await {
                tracing::debug!("Redis pub/sub task stopping: backend and watches are gone");
                return;
            }
        }
    }

    /// Waits for the next thing to do: a command, something heard on the
    /// link, a keepalive, or (without a link) the time to dial again.
    async fn next_event(
        &mut self,
        commands: &mut UnboundedReceiver<Command>,
        keepalive: &mut tokio::time::Interval,
    ) -> Event {
        let watching = !self.channels.is_empty();
        match self.link.as_mut() {
            Some(link) => tokio::select! {
                command = commands.recv() => Event::Command(command),
                heard = link.next() => Event::Heard(heard),
                _ = keepalive.tick(), if watching => Event::Keepalive,
            },
            None => {
                let retry_at = self.retry_at.filter(|_| watching);
                tokio::select! {
                    command = commands.recv() => Event::Command(command),
                    () = sleep_until(retry_at) => Event::Retry,
                }
            }
        }
    }

    /// Acts on one event; `false` when the task should stop (every sender
    /// of commands is gone).
    async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Command(None) => return false,
            Event::Command(Some(Command::Watch {
                channel,
                record,
                id,
                wake,
                done,
            })) => {
                let result = self.watch(channel, record, id, wake).await;
                let _ = done.send(result);
            }
            Event::Command(Some(Command::Unwatch { channel, id })) => {
                self.unwatch(&channel, id).await;
            }
            Event::Heard(heard) => self.heard(heard),
            Event::Keepalive => self.ping().await,
            Event::Retry => {
                if let Err(error) = self.connect().await {
                    tracing::warn!(%error, retry_in = ?self.backoff, "Redis pub/sub reconnect failed");
                }
            }
        }
        true
    }

    /// What the link said: a release to wake waiters for, or a lost
    /// subscription or link to dial again for.
    fn heard(&mut self, heard: Heard) {
        match heard {
            Heard::Message(channel) => {
                if let Some(watched) = self.channels.get(&channel) {
                    tracing::debug!(record = %lossy(&watched.record), "release published");
                    watched.wake();
                }
            }
            Heard::Unsubscribed(channel) => {
                // Our own unsubscribes remove the channel first; one
                // still watched was dropped by the server (its slot
                // moved): dial again to subscribe where it lives now.
                if let Some(watched) = self.channels.get(&channel) {
                    tracing::warn!(
                        record = %lossy(&watched.record),
                        "Redis dropped a watched subscription (slot moved?); reconnecting"
                    );
                    self.lose_link();
                }
            }
            Heard::Lost => {
                tracing::warn!(
                    channels = self.channels.len(),
                    "Redis pub/sub link lost; reconnecting (waiters fall back to their lease meanwhile)"
                );
                self.lose_link();
            }
        }
    }

    async fn watch(
        &mut self,
        channel: Vec<u8>,
        record: Vec<u8>,
        id: u64,
        wake: Arc<Notify>,
    ) -> Result<()> {
        if self.link.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(Error::backend(
                    KIND,
                    OPERATION,
                    "the pub/sub connection is down and reconnecting",
                ));
            }
            self.connect().await?;
        }
        if let Some(watched) = self.channels.get_mut(&channel) {
            // Subscribed already, and the link is up: confirmed.
            watched.watchers.push((id, wake));
            return Ok(());
        }
        let timeout = self.timeout();
        let Some(link) = self.link.as_mut() else {
            return Err(Error::backend(
                KIND,
                OPERATION,
                "the pub/sub connection is down",
            ));
        };
        match tokio::time::timeout(timeout, link.subscribe(&[&channel])).await {
            Ok(Ok(())) => {
                tracing::debug!(record = %lossy(&record), "watching for releases");
                let watchers = vec![(id, wake)];
                self.channels.insert(channel, Watched { record, watchers });
                Ok(())
            }
            Ok(Err(error)) => {
                self.lose_link();
                Err(self.conns.redis_error(OPERATION, error))
            }
            Err(_) => {
                self.lose_link();
                Err(self.conns.timed_out(OPERATION))
            }
        }
    }

    async fn unwatch(&mut self, channel: &[u8], id: u64) {
        let Some(watched) = self.channels.get_mut(channel) else {
            return; // a watch that failed, or was never confirmed
        };
        watched.watchers.retain(|(watch, _)| *watch != id);
        if !watched.watchers.is_empty() {
            return;
        }
        self.channels.remove(channel);
        let timeout = self.timeout();
        if let Some(link) = self.link.as_mut() {
            let unsubscribed = tokio::time::timeout(timeout, link.unsubscribe(channel)).await;
            if !matches!(unsubscribed, Ok(Ok(()))) {
                // Cannot tell what the server has; a fresh link subscribes
                // exactly the live channels.
                self.lose_link();
            }
        }
    }

    async fn ping(&mut self) {
        let timeout = self.timeout();
        if let Some(link) = self.link.as_mut() {
            let pong = tokio::time::timeout(timeout, link.ping()).await;
            if !matches!(pong, Ok(Ok(()))) {
                tracing::warn!("Redis pub/sub link did not answer a PING; reconnecting");
                self.lose_link();
            }
        }
    }

    /// Forgets the link and schedules the next dial.
    fn lose_link(&mut self) {
        self.link = None;
        let jitter = fastrand::f64() * 0.5 + 0.75;
        self.retry_at = Some(Instant::now() + self.backoff.mul_f64(jitter));
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Dials, subscribes every live channel, then wakes the waiters of
    /// records released while the link was down.
    async fn connect(&mut self) -> Result<()> {
        let channels: Vec<&[u8]> = self.channels.keys().map(Vec::as_slice).collect();
        let dial = async {
            let mut link = self.dialer.dial().await?;
            link.subscribe(&channels).await?;
            Ok::<_, redis::RedisError>(link)
        };
        let link = match tokio::time::timeout(self.timeout(), dial).await {
            Ok(Ok(link)) => link,
            Ok(Err(error)) => {
                self.lose_link();
                return Err(self.conns.redis_error(OPERATION, error));
            }
            Err(_) => {
                self.lose_link();
                return Err(self.conns.timed_out(OPERATION));
            }
        };
        self.link = Some(link);
        self.backoff = BACKOFF_MIN;
        self.retry_at = None;
        tracing::debug!(channels = self.channels.len(), "Redis pub/sub link up");
        if !self.channels.is_empty() {
            self.wake_released().await;
        }
        Ok(())
    }

    /// Wakes the watches whose record is gone.
    async fn wake_released(&self) {
        let watched: Vec<&Watched> = self.channels.values().collect();
        let records: Vec<&[u8]> = watched.iter().map(|entry| &entry.record[..]).collect();
        let exists = match self.conns.exist(OPERATION, &records).await {
            Ok(exists) => exists,
            Err(error) => {
                tracing::warn!(
                    %error,
                    "cannot check for releases missed while the Redis pub/sub link was down; \
                     their waiters wait on the lease"
                );
                return;
            }
        };
        for (entry, _) in watched.iter().zip(exists).filter(|(_, exists)| !exists) {
            tracing::debug!(record = %lossy(&entry.record), "released while the pub/sub link was down");
            entry.wake();
        }
    }
}

/// A record name for the logs: companion names start with the byte 0xFF.
fn lossy(name: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(name)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
