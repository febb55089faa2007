//! The link state of one namespace as the kernel reports it, kept up to date from link
//! notifications, so that readiness is awaited, never slept for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use rtnetlink::Handle;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};
use rtnetlink::sys::SocketAddr;
use tokio::sync::Notify;

/// The state of one link as the kernel last reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkStatus {
    /// `IFF_UP`: administratively up.
    pub(crate) up: bool,
    /// `IFF_LOWER_UP`: the carrier is on.
    pub(crate) lower_up: bool,
    /// RFC 2863 operational state is `UP`.
    pub(crate) oper_up: bool,
}

impl LinkStatus {
    pub(super) fn from_message(message: &LinkMessage) -> Self {
        let flags = message.header.flags;
        let oper_up = message.attributes.iter().any(|a| matches!(a, LinkAttribute::OperState(State::Up)));
        LinkStatus {
            up: flags.contains(LinkFlags::Up),
            lower_up: flags.contains(LinkFlags::LowerUp),
            oper_up,
        }
    }

    /// Ready to carry traffic: up, carrier on, and the kernel's link watcher has run (it sets
    /// the operational state, then attaches the qdisc; until then frames are dropped).
    pub(crate) fn ready(self) -> bool {
        self.up && self.lower_up && self.oper_up
    }
}

/// Tracks the link notifications of one namespace.
#[derive(Debug, Default)]
pub(crate) struct LinkMonitor {
    links: Mutex<HashMap<u32, LinkStatus>>,
    changed: Notify,
}

impl LinkMonitor {
    pub(super) async fn run(
        self: Arc<Self>,
        mut messages: impl Stream<Item = (NetlinkMessage<RouteNetlinkMessage>, SocketAddr)> + Unpin,
        handle: Handle,
    ) {
        while let Some((message, _)) = messages.next().await {
            match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    self.record(&link);
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    self.links.lock().expect("monitor lock").remove(&link.header.index);
                }
                // Notifications were dropped: read the whole table again.
                NetlinkPayload::Overrun(_) => {
                    let mut dump = handle.link().get().execute();
                    while let Some(Ok(link)) = dump.next().await {
                        self.record(&link);
                    }
                }
                _ => continue,
            }
            self.changed.notify_waiters();
        }
    }

    fn record(&self, link: &LinkMessage) {
        self.links.lock().expect("monitor lock").insert(link.header.index, LinkStatus::from_message(link));
    }

    pub(crate) fn status(&self, index: u32) -> Option<LinkStatus> {
        self.links.lock().expect("monitor lock").get(&index).copied()
    }

    /// Waits until `condition` holds for link `index`, or `deadline` passes (then returns the
    /// last status seen). Every 50 ms without news the link is queried directly, in case a
    /// notification was lost.
    pub(crate) async fn wait(
        &self,
        handle: &Handle,
        index: u32,
        deadline: Instant,
        condition: impl Fn(LinkStatus) -> bool,
    ) -> std::result::Result<(), Option<LinkStatus>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let status = self.status(index);
            if status.is_some_and(&condition) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(status);
            }
            let tick = (deadline - now).min(Duration::from_millis(50));
            if tokio::time::timeout(tick, notified).await.is_err() {
                let mut query = handle.link().get().match_index(index).execute();
                if let Some(Ok(link)) = query.next().await {
                    self.record(&link);
                }
            }
        }
    }
}
