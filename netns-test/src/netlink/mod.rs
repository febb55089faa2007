//! Netlink in-process, in the words of the `ip` and `tc` command each request mirrors.
//!
//! - [`request`]: links, addresses, routes, neighbours and bridges through rtnetlink;
//! - [`tc`]: the `clsact` qdisc and the classic BPF ingress filters that cuts and partitions
//!   install;
//! - [`monitor`]: the link state of a namespace as the kernel reports it, so that readiness
//!   is awaited, never slept for;
//! - [`dump`]: a namespace's interfaces, addresses and routes as stable text;
//! - [`runtime`]: the background thread whose runtime drives every connection;
//! - `nftables`: tables, chains and rules over nfnetlink (for NAT and firewalls; not used
//!   yet).
//!
//! Requests that rtnetlink has no builder for are sent through [`acked`], the one place that
//! waits for the kernel's acknowledgement; [`refused_with`] reads the kernel's refusal.

pub(crate) mod dump;
pub(crate) mod monitor;
mod nftables;
pub(crate) mod request;
mod rule;
pub(crate) mod runtime;
pub(crate) mod tc;

use std::io;
use std::sync::Arc;

use futures_util::StreamExt;
use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, MulticastGroup};

use crate::error::{Error, Result};

pub(crate) use monitor::{LinkMonitor, LinkStatus};
pub(crate) use request::{At, VethEnd};
pub(crate) use runtime::NetlinkRuntime;

/// The two netlink connections of one namespace: one for requests, one subscribed to link
/// notifications. They are separate so that a burst of notifications can never crowd a reply
/// out of the socket buffer.
#[derive(Clone, Debug)]
pub(crate) struct NodeNetlink {
    pub(crate) handle: Handle,
    pub(crate) links: Arc<LinkMonitor>,
}

impl NodeNetlink {
    /// Opens both connections in the calling thread's network namespace and starts their tasks
    /// on `runtime`. Netlink sockets stay bound to the namespace they were opened in, so the
    /// handle may then be used from any thread.
    pub(crate) fn open(runtime: &tokio::runtime::Handle) -> io::Result<Self> {
        let _context = runtime.enter();
        let (connection, handle, _) = rtnetlink::new_connection()?;
        runtime.spawn(connection);
        let (mut connection, _, messages) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
        // A larger buffer makes overruns rare on big switches; the monitor resynchronises
        // after one anyway.
        let _ = connection.socket_mut().socket_mut().set_rx_buf_sz(1 << 20);
        runtime.spawn(connection);
        let links = Arc::new(LinkMonitor::default());
        runtime.spawn(Arc::clone(&links).run(messages, handle.clone()));
        Ok(NodeNetlink { handle, links })
    }
}

/// Sends `message` with `flags` (besides `NLM_F_REQUEST | NLM_F_ACK`) and waits for the kernel's
/// acknowledgement, for requests that rtnetlink has no builder for (qdiscs with options, tc
/// filters, a neighbour change that must not create).
pub(crate) async fn acked(
    handle: &Handle,
    message: RouteNetlinkMessage,
    flags: u16,
) -> std::result::Result<(), rtnetlink::Error> {
    let mut request = NetlinkMessage::from(message);
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut responses = handle.clone().request(request)?;
    while let Some(response) = responses.next().await {
        if let NetlinkPayload::Error(error) = response.payload {
            return Err(rtnetlink::Error::NetlinkError(error));
        }
    }
    Ok(())
}

/// Whether `error` is the kernel refusing a request with `errno` (e.g. `libc::EEXIST`).
pub(crate) fn is_errno(error: &rtnetlink::Error, errno: i32) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message) if message.raw_code() == -errno)
}

/// Whether `error` is a netlink request refused by the kernel with `errno`.
pub(crate) fn refused_with(error: &Error, errno: i32) -> bool {
    matches!(error, Error::Netlink { source, .. } if is_errno(source, errno))
}

/// `result`, except that a request refused because what it makes exists already (`EEXIST`)
/// succeeds.
pub(crate) fn existing_is_fine(result: Result<()>) -> Result<()> {
    match result {
        Err(error) if refused_with(&error, libc::EEXIST) => Ok(()),
        other => other,
    }
}
