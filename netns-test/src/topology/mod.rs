//! Topologies: which nodes exist, how they are linked, their addresses and routes.
//!
//! One model, two front ends: the [`TopologyBuilder`] in Rust and topology files (see
//! [`Topology::from_toml`]). Both are validated completely before anything is created; a bad
//! topology gives a [`TopologyError`] naming the offending item.

mod error;
mod file;
pub(crate) mod firewall;
mod nat;
mod plan;

use std::sync::Arc;
use std::time::Duration;

use crate::conditions::Conditions;
use crate::trace::Trace;

pub use error::{Location, TopologyError, TopologyErrorKind};
pub use firewall::{Firewall, FirewallRule};
pub use nat::{Filtering, Mapping, Nat};
pub(crate) use plan::firewall::{
    FilterHook, HOOKS, NodeFacts, NodeFirewalls, PlannedFirewall, PlannedRule, plan_firewalls,
};
pub(crate) use plan::{
    Device, Middle, Neighbour, Plan, PlannedIface, PlannedLink, PlannedNat, PlannedRoute, mac_for,
    plan as plan_model,
};

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeKind {
    /// An end host: it does not forward packets.
    Host,
    /// A router: IPv4 and IPv6 forwarding are on.
    Router,
    /// A switch: a Linux bridge in its own namespace; its links are bridge ports without
    /// addresses.
    Switch,
}

impl NodeKind {
    /// The lowercase name used in topology files.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Host => "host",
            NodeKind::Router => "router",
            NodeKind::Switch => "switch",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) location: Option<Location>,
}

/// A static route as written: `to` is a prefix (or `default`), `via` a gateway address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouteSpec {
    pub(crate) node: String,
    pub(crate) to: String,
    pub(crate) via: String,
    pub(crate) location: Option<Location>,
}

/// One end of a [`Link`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndSpec {
    pub(crate) node: String,
    pub(crate) ifname: Option<String>,
    pub(crate) addrs: Vec<String>,
}

/// A point-to-point link (a veth pair) between two nodes, as given to
/// [`TopologyBuilder::link`].
///
/// ```
/// use netns_test::Link;
/// let link = Link::new("client", "router")
///     .ifnames("eth0", "eth1")
///     .addrs("10.0.1.2/24", "10.0.1.1/24")
///     .addr("client", "fd00:1::2/64")
///     .addr("router", "fd00:1::1/64")
///     .mtu(1400);
/// # let _ = link;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub(crate) ends: [EndSpec; 2],
    pub(crate) mtu: Option<u32>,
    /// The conditions a→b and b→a (perfect by default).
    pub(crate) conditions: [Conditions; 2],
    /// Whether conditions were given at all (even perfect ones, to change them at runtime).
    pub(crate) conditions_given: bool,
    /// Conditions given with [`Link::conditions_from`] for a node that is not an end.
    pub(crate) stray_conditions: Option<String>,
    pub(crate) capture: bool,
    /// Periodic outages from the moment the network is up: (every, for).
    pub(crate) outages: Option<(Duration, Duration)>,
    /// Addresses given with [`Link::addr`] for a node that is not an end, kept to report them.
    pub(crate) stray_addrs: Vec<(String, String)>,
    pub(crate) location: Option<Location>,
}

impl Link {
    /// A link between nodes `a` and `b`. Interface names default to `eth0`, `eth1`, ... in the
    /// order each node's links are declared.
    pub fn new(a: impl Into<String>, b: impl Into<String>) -> Self {
        let end = |node: String| EndSpec { node, ifname: None, addrs: Vec::new() };
        Link {
            ends: [end(a.into()), end(b.into())],
            mtu: None,
            conditions: Default::default(),
            conditions_given: false,
            stray_conditions: None,
            capture: false,
            outages: None,
            stray_addrs: Vec::new(),
            location: None,
        }
    }

    /// Names the interfaces at end `a` and end `b` (at most 15 bytes each).
    pub fn ifnames(mut self, a: impl Into<String>, b: impl Into<String>) -> Self {
        self.ends[0].ifname = Some(a.into());
        self.ends[1].ifname = Some(b.into());
        self
    }

    /// Gives one address in CIDR notation (`10.0.0.1/24`, `fd00::1/64`) to end `a` and one to
    /// end `b`.
    pub fn addrs(mut self, a: impl Into<String>, b: impl Into<String>) -> Self {
        self.ends[0].addrs.push(a.into());
        self.ends[1].addrs.push(b.into());
        self
    }

    /// Gives an address in CIDR notation to the end at `node`; call it again for more addresses
    /// on the same interface.
    pub fn addr(mut self, node: &str, addr: impl Into<String>) -> Self {
        match self.ends.iter_mut().find(|end| end.node == node) {
            Some(end) => end.addrs.push(addr.into()),
            None => self.stray_addrs.push((node.to_string(), addr.into())),
        }
        self
    }

    /// Sets the MTU of both ends.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Impairs both directions of the link with `conditions` (delay, jitter, loss, rate,
    /// reorder, duplicate, corrupt); see [`Conditions`]. A link with conditions, perfect ones
    /// included, is carried by the user-space link engine (or netem where the kernel has it)
    /// and its conditions can change while the test runs; the nodes see an ordinary veth
    /// interface either way.
    pub fn conditions(mut self, conditions: Conditions) -> Self {
        self.conditions = [conditions.clone(), conditions];
        self.conditions_given = true;
        self
    }

    /// Impairs the direction of the link that leaves `node` (one of its ends).
    pub fn conditions_from(mut self, node: &str, conditions: Conditions) -> Self {
        match self.ends.iter().position(|end| end.node == node) {
            Some(slot) => self.conditions[slot] = conditions,
            None => self.stray_conditions = Some(node.to_string()),
        }
        self.conditions_given = true;
        self
    }

    /// Writes every frame that crosses the link to a pcap file under
    /// `target/netns-test/<test>/`, kept when the test fails (set `NETNS_TEST_CAPTURE=1` to
    /// capture every impaired link). A captured link is carried by the link engine.
    pub fn capture(mut self) -> Self {
        self.capture = true;
        self
    }

    /// Cuts the link for `length` once every `every` for the whole test, from the moment the
    /// network is up: [`LinkHandle::outages`](crate::LinkHandle::outages) started at bring-up
    /// (`outages = { every = "10s", for = "1s" }` in a file). Each outage is on the timeline.
    /// An outage not shorter than its period, or a zero, is a [`TopologyError`].
    pub fn outages(mut self, every: Duration, length: Duration) -> Self {
        self.outages = Some((every, length));
        self
    }
}

/// What a [`TopologyBuilder`] or a topology file says, before validation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Model {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) links: Vec<Link>,
    pub(crate) routes: Vec<RouteSpec>,
    pub(crate) local: Option<String>,
    pub(crate) auto_routes: bool,
    pub(crate) hostnames: bool,
    pub(crate) static_arp: bool,
    /// The seed of the link conditions (see [`TopologyBuilder::random_seed`]).
    pub(crate) random_seed: Option<u64>,
    /// For a file: where its `local` key is written.
    pub(crate) local_location: Option<Location>,
    /// For a file: its `[nodes]` table, or its first line when it has none; for errors about
    /// the nodes as a whole.
    pub(crate) nodes_location: Option<Location>,
    /// The firewalls, each with its node's name, in the order given.
    pub(crate) firewalls: Vec<(String, Firewall)>,
    /// The NATs, by router, in the order given.
    pub(crate) nats: Vec<NatSpec>,
}

/// A NAT as given: on which router, and where a file writes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NatSpec {
    pub(crate) router: String,
    pub(crate) nat: Nat,
    pub(crate) location: Option<Location>,
}

/// A validated network topology: nodes, links, addresses and routes.
///
/// Build one with [`Topology::builder`], read one with [`Topology::from_toml`], or use
/// [`Topology::pair`], the default of `#[netns_test]`. It is validated once, when it is made,
/// and keeps the result (every name resolved, every address parsed, the routes computed):
/// bringing it up does not validate it again. Cloning is cheap. Two topologies are equal when
/// they describe the same network, whichever front end they came from.
#[derive(Clone, Debug)]
pub struct Topology {
    plan: Arc<Plan>,
    /// What the plan was made from, for the network's runtime changes (`network/paths.rs`),
    /// which validate and plan the model they change the same way.
    model: Arc<Model>,
}

impl PartialEq for Topology {
    /// Equal plans: the same network, whichever front end (and whichever file positions) the
    /// models came from.
    fn eq(&self, other: &Topology) -> bool {
        self.plan == other.plan
    }
}

impl Default for Topology {
    fn default() -> Self {
        Topology::pair()
    }
}

impl Topology {
    /// Starts a topology.
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder { model: Model::default() }
    }

    /// The default topology of `#[netns_test]`, a pair of hosts: the test body's node `test0`
    /// holds `veth0` with 1.1.1.2/24; the peer node `test1` holds `veth1` with 1.1.1.1/24.
    pub fn pair() -> Topology {
        Topology::builder()
            .host("test0")
            .host("test1")
            .link(Link::new("test0", "test1").ifnames("veth0", "veth1").addrs("1.1.1.2/24", "1.1.1.1/24"))
            .build()
            .expect("the pair topology is valid")
    }

    /// Parses and validates the contents of a topology file (the format is described in the
    /// crate's README and under `tests/topologies/`); `path` names the file in error messages.
    ///
    /// # Errors
    /// A [`TopologyError`] with the file, line and column of the offending item.
    pub fn from_toml(text: &str, path: impl AsRef<std::path::Path>) -> Result<Topology, TopologyError> {
        Topology::validate(&file::parse(text, path.as_ref())?)
    }

    /// Reads, parses and validates a topology file.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the file cannot be read, [`crate::Error::Topology`] when it is
    /// invalid.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> crate::error::Result<Topology> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| crate::error::Error::io(format!("reading topology file {}", path.display()), e))?;
        Ok(Topology::from_toml(&text, path)?)
    }

    /// The node names, in declaration order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.plan.nodes.iter().map(|node| node.name.as_str())
    }

    /// The node the test body runs in: the one named with [`TopologyBuilder::local`] (`local`
    /// in a file), else the first node declared that is not a switch, host or router alike.
    pub fn local(&self) -> &str {
        &self.plan.nodes[self.plan.local].name
    }

    /// The validated plan, shared: what bringing the network up works from.
    pub(crate) fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The model the plan was made from.
    pub(crate) fn model(&self) -> &Model {
        &self.model
    }

    /// The one place a model is validated.
    fn validate(model: &Model) -> Result<Topology, TopologyError> {
        let trace = Trace::new("topology", crate::settings::get().is_ok_and(|settings| settings.trace));
        let plan = plan::plan(model)?;
        trace.mark(&format!(
            "validated and planned once: {} nodes, {} links, {} routes",
            plan.nodes.len(),
            plan.links.len(),
            plan.nodes.iter().map(|node| node.routes.len()).sum::<usize>()
        ));
        Ok(Topology { plan: Arc::new(plan), model: Arc::new(model.clone()) })
    }
}

/// Builds a [`Topology`]; nothing is checked until [`build`](TopologyBuilder::build), which
/// checks everything.
///
/// ```
/// use netns_test::{Link, Topology};
/// let topology = Topology::builder()
///     .host("client")
///     .router("r1")
///     .host("server")
///     .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24"))
///     .link(Link::new("r1", "server").addrs("10.0.2.1/24", "10.0.2.2/24"))
///     .auto_routes()
///     .build()?;
/// assert_eq!(topology.local(), "client");
/// # Ok::<(), netns_test::topology::TopologyError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct TopologyBuilder {
    model: Model,
}

impl TopologyBuilder {
    fn node(mut self, name: impl Into<String>, kind: NodeKind) -> Self {
        self.model.nodes.push(NodeSpec { name: name.into(), kind, location: None });
        self
    }

    /// Adds a host.
    pub fn host(self, name: impl Into<String>) -> Self {
        self.node(name, NodeKind::Host)
    }

    /// Adds a router (forwarding on).
    pub fn router(self, name: impl Into<String>) -> Self {
        self.node(name, NodeKind::Router)
    }

    /// Adds a switch (a Linux bridge in its own namespace), of at most 1023 ports.
    ///
    /// On a switch with more than 128 ports, the interfaces facing it receive through their own
    /// queue (GRO on) and its ports send without TSO: otherwise the copies of one broadcast,
    /// such as an ARP request, overflow the kernel's per-CPU backlog of 1000 frames shared by
    /// every namespace, and ARP across the switch fails silently. Ports whose links have
    /// conditions are left as they are.
    pub fn switch(self, name: impl Into<String>) -> Self {
        self.node(name, NodeKind::Switch)
    }

    /// Adds a link.
    pub fn link(mut self, link: Link) -> Self {
        self.model.links.push(link);
        self
    }

    /// Adds a static route to `node`: `to` is a prefix such as `10.0.3.0/24` or `default`
    /// (`default` means `0.0.0.0/0` or `::/0`, following the gateway's family), `via` the
    /// gateway, which must be on a subnet the node is connected to.
    pub fn route(mut self, node: &str, to: impl Into<String>, via: impl Into<String>) -> Self {
        self.model.routes.push(RouteSpec {
            node: node.to_string(),
            to: to.into(),
            via: via.into(),
            location: None,
        });
        self
    }

    /// Adds a default route to `node` via `gateway`.
    pub fn default_route(self, node: &str, gateway: impl Into<String>) -> Self {
        self.route(node, "default", gateway)
    }

    /// Installs shortest-path routes so that every host and router reaches every subnet of the
    /// topology, through routers (hosts do not forward).
    ///
    /// For each address family, a node gets a route to each subnet it is not connected to, via
    /// the first hop of a shortest path, except that a node with a single uplink (all those
    /// routes would leave through one gateway) gets one default route through that gateway
    /// instead, as real networks do: so a host behind one router, or an edge router, has one
    /// route, however big the topology. Two routers that would each be the other's single
    /// uplink keep their routes per subnet, so that packets to addresses outside the topology
    /// are not bounced between them. Static routes to the same prefix win, and a node with a
    /// static default route of that family gets routes per subnet.
    pub fn auto_routes(mut self) -> Self {
        self.model.auto_routes = true;
        self
    }

    /// Fills every neighbour table (ARP and IPv6 neighbour discovery) up front with permanent
    /// entries for the other addresses of each link or switch (Mininet's `--arp`).
    ///
    /// Neighbour resolution then never runs: use it for large switched topologies, not for
    /// tests of ARP itself. The kernel's neighbour table is shared by every namespace of the
    /// host and holds at most `net.ipv4.neigh.default.gc_thresh3` entries (1024 by default,
    /// settable only from the root namespace) created in the last five seconds; permanent
    /// entries do not count. A hundred hosts on one switch pinging each other need 9900.
    pub fn static_arp(mut self) -> Self {
        self.model.static_arp = true;
        self
    }

    /// Fixes the seed of the random decisions of every impaired link (each link derives its own
    /// from it; a seed in a link's [`Conditions`] wins). Without it, each run picks a seed, and
    /// a failing test prints it; `NETNS_TEST_SEED` replays it and overrides this one.
    pub fn random_seed(mut self, seed: u64) -> Self {
        self.model.random_seed = Some(seed);
        self
    }

    /// Gives every host and router its own UTS namespace with its name as hostname.
    pub fn hostnames(mut self) -> Self {
        self.model.hostnames = true;
        self
    }

    /// Names the node the test body runs in (default: the first node declared that is not a
    /// switch, host or router alike).
    pub fn local(mut self, name: impl Into<String>) -> Self {
        self.model.local = Some(name.into());
        self
    }

    /// Gives `node` (a host or router) a firewall, after those it already has: see
    /// [`Firewall`] for what it filters on each kind of node and how several compose. It is
    /// applied once the node's links, addresses and routes are up;
    /// [`Node::set_firewall`](crate::Node::set_firewall) replaces it at runtime.
    pub fn firewall(mut self, node: &str, firewall: Firewall) -> Self {
        self.model.firewalls.push((node.to_string(), firewall));
        self
    }

    /// Puts a NAT on `router` ([`Nat`]: its mapping and filtering behaviours, hairpinning,
    /// port preservation, its outside interface). The NAT translates on the router's outside
    /// link, which the user-space link engine then carries; with
    /// [`auto_routes`](Self::auto_routes), nothing outside the NAT is given a route to the
    /// subnets behind it, the nodes behind it default-route towards it, and the router
    /// default-routes out of its outside interface.
    ///
    /// ```
    /// use netns_test::topology::Nat;
    /// use netns_test::{Link, Topology};
    /// let topology = Topology::builder()
    ///     .host("laptop")
    ///     .router("home")
    ///     .router("isp")
    ///     .host("server")
    ///     .link(Link::new("laptop", "home").addrs("192.168.1.2/24", "192.168.1.1/24"))
    ///     .link(Link::new("home", "isp").addrs("203.0.113.2/24", "203.0.113.1/24"))
    ///     .link(Link::new("isp", "server").addrs("198.51.100.1/24", "198.51.100.2/24"))
    ///     .nat("home", Nat::port_restricted())
    ///     .auto_routes()
    ///     .build()?;
    /// # let _ = topology;
    /// # Ok::<(), netns_test::topology::TopologyError>(())
    /// ```
    pub fn nat(mut self, router: &str, nat: Nat) -> Self {
        self.model.nats.push(NatSpec { router: router.to_string(), nat, location: None });
        self
    }

    /// Validates the topology.
    ///
    /// # Errors
    /// A [`TopologyError`] naming the first invalid item.
    pub fn build(self) -> Result<Topology, TopologyError> {
        Topology::validate(&self.model)
    }
}
