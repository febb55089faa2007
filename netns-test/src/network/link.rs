//! A link of the running network: its two ends, down and up, the conditions it carries, and
//! flapping.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::wait::{Stop, Wait, poll_until};
use super::{Interface, Network, Node};
use crate::conditions::{Conditions, Direction, DirectionCounters};
use crate::error::{Error, Result, name_list};
use crate::impair::Backend;
use crate::netlink::At;
use crate::packets::{Hook, HookGuard, HookState};
use crate::timeline::{EventKind, Timeline};
use crate::topology::{Neighbour, PlannedRoute};

/// A link of the network, between two node interfaces. Cloning is cheap.
#[derive(Clone)]
pub struct LinkHandle {
    inner: Arc<LinkInner>,
}

/// What a link handle holds: everything its operations need, taken from the plan when the
/// handle is made.
struct LinkInner {
    network: Network,
    /// The link's key: the plan's index for the topology's links, the next number for each
    /// link added at runtime.
    link: usize,
    /// How many cuts the link has now (it is ready only when it has none).
    cuts: Arc<AtomicUsize>,
    /// The ends in the order they were asked for (`net.link(a, b)`).
    ends: [End; 2],
    /// Whether the link crosses the middle namespace (it has conditions or a capture).
    carried: bool,
    /// Per node on either side: the neighbour entries it may be left resolving across the
    /// link after a cut or a link down (see [`Plan::neighbours_across`](crate::topology::Plan)).
    neighbours: Vec<(Node, Vec<Neighbour>)>,
}

/// One end of a link.
struct End {
    node: Node,
    ifname: String,
    ifindex: u32,
    /// The direction of the link that leaves this end.
    leaving: Direction,
    /// The node's routes through this interface, which the kernel deletes when it goes down.
    routes: Vec<PlannedRoute>,
}

impl fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = &self.inner.ends;
        f.debug_struct("LinkHandle")
            .field("a", &format_args!("{}:{}", a.node.name(), a.ifname))
            .field("b", &format_args!("{}:{}", b.node.name(), b.ifname))
            .finish()
    }
}

impl Network {
    /// The link between `a` and `b`, each written `node` or `node:interface`:
    /// `net.link("client", "r1")`, or, where two nodes are joined by several links,
    /// `net.link("a:eth1", "b")` or `net.link("a:eth1", "b:eth0")`. A host's link to a switch
    /// is `net.link("h1", "sw")`: the switch is a node like any other, its port the interface.
    /// The handle's ends are in the order asked for.
    ///
    /// # Panics
    /// When no link, or more than one, matches; [`try_link`](Self::try_link) returns the
    /// error instead.
    #[track_caller]
    pub fn link(&self, a: &str, b: &str) -> LinkHandle {
        self.try_link(a, b).unwrap_or_else(|error| panic!("{error}"))
    }

    /// The link between `a` and `b` (see [`link`](Self::link)), or an error.
    ///
    /// # Errors
    /// [`Error::UnknownNode`] or [`Error::UnknownInterface`] for an end that does not exist;
    /// [`Error::UnknownLink`] when no link joins the ends; [`Error::AmbiguousLink`], listing the
    /// candidates with their interfaces, when several do and no interface says which.
    pub fn try_link(&self, a: &str, b: &str) -> Result<LinkHandle> {
        let split = |end: &str| match end.split_once(':') {
            Some((node, iface)) => (node.to_string(), Some(iface.to_string())),
            None => (end.to_string(), None),
        };
        let ((a_node, a_iface), (b_node, b_iface)) = (split(a), split(b));
        let first = self.try_node(&a_node)?;
        let second = self.try_node(&b_node)?;
        for (node, iface) in [(first, &a_iface), (second, &b_iface)] {
            if let Some(iface) = iface {
                node.interface(iface)?;
            }
        }
        let interfaces = first.interfaces();
        let candidates: Vec<&Interface> = interfaces
            .iter()
            .filter(|i| i.peer_node() == b_node)
            .filter(|i| a_iface.as_ref().is_none_or(|name| i.name() == name))
            .filter(|i| b_iface.as_ref().is_none_or(|name| i.peer_name() == name))
            .collect();
        let ends = |i: &Interface| {
            [format!("{a_node}:{}", i.name()), format!("{}:{}", i.peer_node(), i.peer_name())]
        };
        match candidates[..] {
            [iface] => LinkHandle::new(self, iface.link, [first, second]),
            [] => Err(Error::UnknownLink {
                a: a.to_string(),
                b: b.to_string(),
                node: a_node.clone(),
                links: interfaces.iter().map(|i| ends(i).join(" – ")).collect(),
            }),
            _ => Err(Error::AmbiguousLink {
                a: a.to_string(),
                b: b.to_string(),
                candidates: candidates.into_iter().map(ends).collect(),
            }),
        }
    }
}

impl LinkHandle {
    /// The handle of link `link` (its key), whose ends are the nodes `asked`, in that order,
    /// as the network's paths are now.
    pub(super) fn new(network: &Network, link: usize, asked: [&Node; 2]) -> Result<LinkHandle> {
        let paths = network.paths();
        let Some(facts) = paths.ends(link, asked.map(Node::index)) else {
            return Err(Error::UnknownLink {
                a: asked[0].name().to_string(),
                b: asked[1].name().to_string(),
                node: asked[0].name().to_string(),
                links: Vec::new(),
            });
        };
        let mut facts = facts.into_iter();
        let ends = asked.map(|node| {
            let end = facts.next().expect("two ends");
            End {
                node: node.clone(),
                ifname: end.ifname,
                ifindex: end.ifindex,
                leaving: end.leaving,
                routes: end.routes,
            }
        });
        // The topology's links have the neighbour entries the plan lists; a link added at
        // runtime has none to refresh (its neighbours resolve as the kernel retries).
        let plan = network.plan();
        let across = if link < plan.links.len() { plan.neighbours_across(link) } else { Vec::new() };
        let mut by_node: HashMap<usize, Vec<Neighbour>> = HashMap::new();
        for entry in across {
            by_node.entry(entry.node).or_default().push(entry);
        }
        let mut neighbours: Vec<(Node, Vec<Neighbour>)> =
            by_node.into_iter().map(|(node, entries)| (network.nodes()[node].clone(), entries)).collect();
        neighbours.sort_by_key(|(node, _)| node.index());
        let carried = paths.carried(link);
        let cuts = paths.cuts(link);
        let inner = LinkInner { network: network.clone(), link, cuts, ends, carried, neighbours };
        Ok(LinkHandle { inner: Arc::new(inner) })
    }

    /// The link's key in the network's paths.
    pub(super) fn key(&self) -> usize {
        self.inner.link
    }

    /// The network the link is part of.
    pub(super) fn network(&self) -> &Network {
        &self.inner.network
    }

    /// The two ends: each node and its interface name.
    pub fn ends(&self) -> [(&Node, &str); 2] {
        let [a, b] = &self.inner.ends;
        [(&a.node, a.ifname.as_str()), (&b.node, b.ifname.as_str())]
    }

    /// The ends' nodes and interface indexes, for the cut's filters.
    pub(super) fn interfaces(&self) -> impl Iterator<Item = (&Node, u32, &str)> {
        self.inner.ends.iter().map(|end| (&end.node, end.ifindex, end.ifname.as_str()))
    }

    /// How many cuts this link has now (it is ready only when it has none).
    pub(super) fn cuts(&self) -> &AtomicUsize {
        &self.inner.cuts
    }

    /// The link as the timeline names it: `a:eth0 – b:eth0`.
    pub(super) fn subject(&self) -> String {
        let [a, b] = &self.inner.ends;
        format!("{}:{} – {}:{}", a.node.name(), a.ifname, b.node.name(), b.ifname)
    }

    pub(super) fn timeline(&self) -> &Timeline {
        self.inner.network.timeline()
    }

    pub(super) fn describe(&self) -> String {
        let [a, b] = &self.inner.ends;
        format!("the link {}:{} – {}:{}", a.node.name(), a.ifname, b.node.name(), b.ifname)
    }

    /// Resolves, from the topology, the neighbour entries that nodes on one side of this link
    /// hold unresolved (incomplete or failed) for addresses on the other side: a cut or a
    /// link that was down leaves them waiting for the kernel's next retry.
    pub(super) fn refresh_neighbours(&self) -> Result<()> {
        let link = self.clone();
        self.inner.network.netlink_rt().block_on(async move {
            futures_util::future::try_join_all(link.inner.neighbours.iter().map(|(node, known)| async move {
                let at = At { node: node.name(), handle: &node.netlink().handle };
                for (ifindex, addr) in at.unresolved_neighbours().await? {
                    if let Some(known) = known.iter().find(|k| (k.ifindex, k.addr) == (ifindex, addr)) {
                        at.resolve_neighbour(ifindex, addr, known.mac).await?;
                    }
                }
                Ok::<(), Error>(())
            }))
            .await
            .map(drop)
        })
    }

    /// Sets both ends administratively down (`ip link set <dev> down`): unlike a cut, the
    /// nodes see it (routes over the link go away, sends fail at once).
    ///
    /// # Errors
    /// A netlink failure.
    pub fn down(&self) -> Result<()> {
        self.timeline().record(EventKind::LinkDown, self.subject(), "");
        self.set_up(false)
    }

    /// Sets both ends up again, waits until the kernel reports the link ready, puts back the
    /// topology's routes through the link (the kernel deleted them with the link), and
    /// resolves the neighbour entries left waiting across it (as [`cut`](Self::cut) does when
    /// it heals), so that the link carries the next packet at once.
    ///
    /// # Errors
    /// A netlink failure, or [`Error::Timeout`] when the carrier does not come back.
    pub fn up(&self) -> Result<()> {
        self.timeline().record(EventKind::LinkUp, self.subject(), "");
        self.set_up(true)?;
        // The carrier only: a link may go down and up while it is cut, and stays cut.
        self.wait_until(false).wait()?;
        self.restore_routes()?;
        self.refresh_neighbours()
    }

    fn restore_routes(&self) -> Result<()> {
        for end in &self.inner.ends {
            let (node, routes) = (end.node.clone(), end.routes.clone());
            end.node.netlink_rt().block_on(async move {
                let at = At { node: node.name(), handle: &node.netlink().handle };
                for route in routes {
                    at.add_route_again(route.to, route.via).await?;
                }
                Ok::<(), Error>(())
            })?;
        }
        Ok(())
    }

    /// The direction of the link that leaves `node`.
    pub(super) fn direction_from(&self, node: &str) -> Result<Direction> {
        match self.inner.ends.iter().find(|end| end.node.name() == node) {
            Some(end) => Ok(end.leaving),
            None => {
                let mut ends: Vec<&End> = self.inner.ends.iter().collect();
                ends.sort_by_key(|end| end.leaving.index());
                Err(Error::UnknownNode {
                    name: node.to_string(),
                    known: name_list(ends.iter().map(|end| end.node.name())),
                })
            }
        }
    }

    /// The backend that carries this link's conditions.
    fn backend(&self) -> Result<&Backend> {
        match self.inner.network.backend() {
            Some(backend) if self.inner.carried => Ok(backend),
            _ => Err(Error::Unsupported {
                feature: format!("changing the conditions of {}", self.describe()),
                reason: "the link was built without conditions; give it some in the topology \
                         (`Link::conditions(Conditions::new())` for a perfect link that may change later)"
                    .into(),
            }),
        }
    }

    /// Changes the conditions of both directions, from the next frame on.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a link built without conditions; invalid conditions
    /// ([`Error::InvalidConditions`], the same whichever backend carries the link).
    pub fn set_conditions(&self, conditions: Conditions) -> Result<()> {
        for direction in Direction::BOTH {
            self.set_conditions_of(direction, conditions.clone())?;
        }
        Ok(())
    }

    /// Changes the conditions of the direction that leaves `node`, from the next frame on.
    ///
    /// # Errors
    /// As [`set_conditions`](Self::set_conditions); a node that is not an end of the link.
    pub fn set_conditions_from(&self, node: &str, conditions: Conditions) -> Result<()> {
        self.set_conditions_of(self.direction_from(node)?, conditions)
    }

    fn set_conditions_of(&self, direction: Direction, conditions: Conditions) -> Result<()> {
        let network = &self.inner.network;
        let detail = format!("{conditions} from {}", self.sender(direction));
        self.backend()?.set_conditions(
            network.plan(),
            network.netlink_rt(),
            self.inner.link,
            direction,
            conditions,
        )?;
        self.timeline().record(EventKind::Conditions, self.subject(), detail);
        Ok(())
    }

    /// The node whose frames leave through `direction`.
    fn sender(&self, direction: Direction) -> &str {
        self.inner.ends.iter().find(|end| end.leaving == direction).map_or("?", |end| end.node.name())
    }

    /// What the link engine has done to the frames leaving `node`: carried, lost, queued,
    /// duplicated, corrupted, reordered.
    ///
    /// # Errors
    /// A link built without conditions, a node that is not an end, or netem carrying the link
    /// (only the user-space engine counts).
    pub fn counters_from(&self, node: &str) -> Result<DirectionCounters> {
        let direction = self.direction_from(node)?;
        Ok(self.backend()?.counters(self.inner.link)?[direction.index()])
    }

    pub(super) fn set_up(&self, up: bool) -> Result<()> {
        for end in &self.inner.ends {
            let (node, index, name) = (end.node.clone(), end.ifindex, end.ifname.clone());
            end.node.netlink_rt().block_on(async move {
                At { node: node.name(), handle: &node.netlink().handle }.set_link_up(index, &name, up).await
            })?;
        }
        Ok(())
    }

    /// Waits until the link carries traffic: both ends up with carrier, the kernel done
    /// activating them, and no [`cut`](Self::cut) in place. (A cut link keeps its carrier, but
    /// carries nothing until the cut heals.) After [`up`](Self::up) returns on a link that is
    /// not cut, or a cut heals, it is ready at once.
    pub fn ready(&self) -> Wait {
        self.wait_until(true)
    }

    /// Waits until both ends are up with carrier and, when `uncut`, until no cut is in place.
    fn wait_until(&self, uncut: bool) -> Wait {
        let link = self.clone();
        let what =
            if uncut { "to carry traffic (up with carrier, and not cut)" } else { "to be up with carrier" };
        let runtime = self.inner.network.netlink_rt().handle();
        Wait::new(runtime, format!("{} {what}", self.describe()), move |deadline| {
            Box::pin(async move {
                for end in &link.inner.ends {
                    let netlink = end.node.netlink();
                    netlink
                        .links
                        .wait(&netlink.handle, end.ifindex, deadline, |status| status.ready())
                        .await
                        .map_err(|_| Stop::DeadlinePassed)?;
                }
                if !uncut {
                    return Ok(());
                }
                // Cuts are this process's own doing, with no kernel notification to wait on.
                poll_until(deadline, || std::future::ready(Ok(link.cuts().load(Ordering::Acquire) == 0)))
                    .await
            })
        })
    }

    /// The direction as the timeline names it: `a:eth0 → b:eth0`.
    fn direction_subject(&self, direction: Direction) -> String {
        let [a, b] = &self.inner.ends;
        let (from, to) = if a.leaving == direction { (a, b) } else { (b, a) };
        format!("{}:{} → {}:{}", from.node.name(), from.ifname, to.node.name(), to.ifname)
    }

    /// Installs a per-packet hook on the direction that leaves `node`: each frame entering
    /// that direction meets `hook` (a closure `FnMut(&Frame, &mut HookContext) -> Verdict`,
    /// or a ready-made [`Hook`] such as a drop list) before the link's conditions. The hook
    /// stays until the returned guard is dropped; installs and removals are on the
    /// [timeline](Network::events), the removal with what the hook decided.
    ///
    /// The link must be carried by the user-space engine (give it conditions, even
    /// `Conditions::new()`, and do not force netem). A direction has one hook at a time.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a link built without conditions, a link netem carries, or
    /// a direction that has a hook already; [`Error::UnknownNode`] for a node that is not an
    /// end of the link.
    pub fn hook_from(&self, node: &str, hook: impl Into<Hook>) -> Result<HookGuard> {
        let direction = self.direction_from(node)?;
        let backend = self.carrier("per-packet hooks on")?;
        let hook = hook.into();
        let subject = self.direction_subject(direction);
        let state = Arc::new(HookState::new(subject.clone(), hook.description.clone()));
        let timeline = self.timeline().clone();
        backend.install_hook(self.inner.link, direction, hook, Arc::clone(&state), timeline)?;
        self.timeline().record(EventKind::HookInstalled, subject, state.description.clone());
        let link = self.clone();
        let removed = Arc::clone(&state);
        let remove = move || {
            let Some(backend) = link.inner.network.backend() else { return Ok(()) };
            let panicked = removed.panic_message().is_some();
            backend.remove_hook(link.inner.link, direction, &removed)?;
            if !panicked {
                link.timeline().record(EventKind::HookRemoved, removed.subject.clone(), removed.summary());
            }
            Ok(())
        };
        Ok(HookGuard { state, remove: Some(Box::new(remove)) })
    }

    /// The backend carrying this link, for a feature only a carried link has.
    fn carrier(&self, feature: &str) -> Result<&Backend> {
        match self.inner.network.backend() {
            Some(backend) if self.inner.carried => Ok(backend),
            _ => Err(Error::Unsupported {
                feature: format!("{feature} {}", self.describe()),
                reason: "the link was built without conditions, so the user-space engine does not carry \
                         it; give it some in the topology (`Link::conditions(Conditions::new())` for a \
                         perfect link)"
                    .into(),
            }),
        }
    }
}
