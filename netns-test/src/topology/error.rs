//! Validation errors of a topology, each naming the offending item.

use std::fmt;
use std::path::PathBuf;

use crate::conditions::ConditionError;

/// Where an item of a topology file was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file, as given to the parser.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// An invalid topology: what is wrong, and where it was written when it came from a file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", .location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
pub struct TopologyError {
    /// What is wrong.
    pub kind: TopologyErrorKind,
    /// The file position of the offending item, for topologies read from a file.
    pub location: Option<Box<Location>>,
}

impl TopologyError {
    pub(crate) fn new(kind: TopologyErrorKind) -> Self {
        TopologyError { kind, location: None }
    }
}

impl From<TopologyErrorKind> for TopologyError {
    fn from(kind: TopologyErrorKind) -> Self {
        TopologyError::new(kind)
    }
}

/// The ways a topology can be invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyErrorKind {
    /// The topology has no node.
    #[error("the topology has no nodes")]
    Empty,
    /// A node name that cannot be used (it becomes a hostname and a hosts-file entry).
    #[error("invalid node name `{name}`: {reason}")]
    InvalidNodeName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Two nodes with one name.
    #[error("duplicate node `{name}`")]
    DuplicateNode {
        /// The name given twice.
        name: String,
    },
    /// A reference to a node that does not exist.
    #[error("{context} refers to unknown node `{name}`")]
    UnknownNode {
        /// The name referred to.
        name: String,
        /// The item that refers to it, e.g. "link 2 (`a` – `b`)".
        context: String,
    },
    /// A link whose two ends are the same node.
    #[error("{link} connects node `{node}` to itself")]
    SelfLink {
        /// The node.
        node: String,
        /// The link.
        link: String,
    },
    /// An interface name longer than the kernel's limit.
    #[error("interface name `{name}` of node `{node}` is {len} bytes long; Linux allows at most 15")]
    InterfaceNameTooLong {
        /// The node.
        node: String,
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// An interface name the kernel would refuse.
    #[error("invalid interface name `{name}` of node `{node}`: {reason}")]
    InvalidInterfaceName {
        /// The node.
        node: String,
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Two interfaces with one name in a node.
    #[error("node `{node}` has two interfaces named `{name}`")]
    DuplicateInterface {
        /// The node.
        node: String,
        /// The name.
        name: String,
    },
    /// An address or prefix that does not parse.
    #[error("invalid address `{value}` for {context}: {reason}")]
    InvalidAddress {
        /// The text given.
        value: String,
        /// Where it was given, e.g. "interface `eth0` of node `a`".
        context: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The same address on two interfaces.
    #[error("address {address} is given to both {first} and {second}")]
    DuplicateAddress {
        /// The address.
        address: String,
        /// The first interface that has it.
        first: String,
        /// The second one.
        second: String,
    },
    /// An address for a node that is not an end of the link.
    #[error("{link} gives address {address} to node `{node}`, which is not one of its ends")]
    AddressForOtherNode {
        /// The link.
        link: String,
        /// The node named.
        node: String,
        /// The address.
        address: String,
    },
    /// The two ends of a link (or the ports of one switch) are in different subnets.
    #[error("address {address} of {interface} is outside the subnet {subnet} of its link ({other})")]
    AddressOutsideSubnet {
        /// The address.
        address: String,
        /// The interface that has it.
        interface: String,
        /// The subnet the rest of the link uses.
        subnet: String,
        /// The address that defines that subnet, and where.
        other: String,
    },
    /// A switch port with an address (a switch works at layer 2).
    #[error("{link} gives address {address} to switch `{switch}`; switches have no addresses")]
    AddressOnSwitch {
        /// The switch.
        switch: String,
        /// The link.
        link: String,
        /// The address.
        address: String,
    },
    /// Two switches linked to each other.
    #[error("{link} connects switch `{a}` to switch `{b}`; link switches through a router or a host")]
    SwitchToSwitch {
        /// The link.
        link: String,
        /// One switch.
        a: String,
        /// The other.
        b: String,
    },
    /// More ports than a Linux bridge takes.
    #[error("switch `{switch}` has {ports} ports; a Linux bridge takes at most 1023")]
    TooManySwitchPorts {
        /// The switch.
        switch: String,
        /// How many links it has.
        ports: usize,
    },
    /// An MTU out of range.
    #[error("{link} has MTU {mtu}; {reason}")]
    InvalidMtu {
        /// The link.
        link: String,
        /// The value.
        mtu: u32,
        /// The allowed range.
        reason: String,
    },
    /// A route that does not parse or cannot be installed.
    #[error("invalid route `{route}` of node `{node}`: {reason}")]
    InvalidRoute {
        /// The node.
        node: String,
        /// The route as written.
        route: String,
        /// Why.
        reason: String,
    },
    /// A gateway that is not on any subnet the node is connected to.
    #[error("gateway {gateway} of node `{node}` is not on a subnet the node is connected to ({subnets})")]
    GatewayNotOnSubnet {
        /// The node.
        node: String,
        /// The gateway address.
        gateway: String,
        /// The node's connected subnets, for the message.
        subnets: String,
    },
    /// A node kind that cannot hold the test body.
    #[error("the local node `{name}` is a switch; the test body must run in a host or router")]
    LocalIsSwitch {
        /// The switch.
        name: String,
    },
    /// A topology of switches only: the test body needs a host or router to run in.
    #[error("the topology has only switches ({count}); the test body runs in a host or router, so add one")]
    OnlySwitches {
        /// How many switches there are.
        count: usize,
    },
    /// A link condition out of range.
    #[error("{link}: {source}")]
    InvalidCondition {
        /// The link and direction, e.g. "link 2 (`a` – `b`) from `a`".
        link: String,
        /// The field, the value given and the allowed range.
        #[source]
        source: ConditionError,
    },
    /// Conditions for the direction leaving a node that is not an end of the link.
    #[error("{link} gives conditions to the direction leaving node `{node}`, which is not one of its ends")]
    ConditionsForOtherNode {
        /// The link.
        link: String,
        /// The node named.
        node: String,
    },
    /// A topology file that does not parse.
    #[error("{message}")]
    Parse {
        /// The parser's message.
        message: String,
    },
    /// A NAT on a node that is not a router.
    #[error("a NAT is given to {kind} `{node}`; only a router can be a NAT")]
    NatOnNonRouter {
        /// The node.
        node: String,
        /// What it is (`host`, `switch`).
        kind: String,
    },
    /// Two NATs on one router.
    #[error("router `{router}` is given two NATs")]
    DuplicateNat {
        /// The router.
        router: String,
    },
    /// A NAT preset name that does not exist (in a file).
    #[error("unknown NAT preset `{name}` for router `{router}`; the presets are {known}")]
    UnknownNatPreset {
        /// The router.
        router: String,
        /// The name written.
        name: String,
        /// The presets there are.
        known: String,
    },
    /// A NAT whose outside interface is not named and cannot be found: the router has no
    /// default route of its own, and automatic routes would give it none either (it has
    /// several uplinks), or its `outside` names no interface of it.
    #[error(
        "the outside interface of the NAT on router `{router}` {reason}; name it with `outside` (its interfaces: {interfaces})"
    )]
    NatOutside {
        /// The router.
        router: String,
        /// What is wrong.
        reason: String,
        /// The router's interfaces.
        interfaces: String,
    },
    /// A NAT setting out of range: its port range, its UDP timeout.
    #[error("the NAT on router `{router}`: {reason}")]
    InvalidNat {
        /// The router.
        router: String,
        /// What is wrong.
        reason: String,
    },
}
