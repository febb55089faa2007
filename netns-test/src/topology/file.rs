//! Topology files: the same model as the builder, written in TOML so that a bug report can
//! carry the topology that breaks.
//!
//! ```toml
//! # Optional settings.
//! local = "client"     # the node the test body runs in (default: the first that is not a switch)
//! auto_routes = true   # shortest-path routes between all subnets
//! hostnames = true     # every host and router gets its own hostname
//! static_arp = true    # permanent neighbour entries instead of ARP (large switches)
//! seed = 42            # the seed of the link conditions (default: a new one each run)
//!
//! # Nodes in order: name = "host" | "router" | "switch".
//! [nodes]
//! client = "host"
//! r1 = "router"
//! server = "host"
//!
//! # Links: `a` and `b` are "node" or "node:interface".
//! [[links]]
//! a = "client:eth0"
//! b = "r1:eth0"
//! addrs = { client = ["10.0.1.2/24", "fd00:1::2/64"], r1 = ["10.0.1.1/24", "fd00:1::1/64"] }
//! mtu = 1400
//! conditions = { delay = "10ms", loss = "1%" }            # both directions (see Conditions)
//! conditions_from = { client = { rate = "10mbit" } }      # only the direction leaving client
//! capture = true                                          # a pcap of every frame
//! outages = { every = "10s", for = "1s" }                 # cut 1 s in every 10 s (Link::outages)
//!
//! [[links]]
//! a = "r1"
//! b = "server"
//! addrs = { r1 = ["10.0.2.1/24", "fd00:2::1/64"], server = ["10.0.2.2/24", "fd00:2::2/64"] }
//!
//! # Static routes; `to` may be "default".
//! [[routes]]
//! node = "server"
//! to = "default"
//! via = "10.0.2.1"
//!
//! # NATs by router: a preset ("full-cone", "restricted-cone", "port-restricted",
//! # "symmetric"), or a table with `preset` or `mapping` and `filtering`
//! # ("endpoint-independent", "address-dependent", "address-and-port-dependent") and options.
//! [nat]
//! r1 = { preset = "port-restricted", hairpin = false, port_preservation = true, udp_timeout = "30s", outside = "eth1", ports = "1024-4095" }
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

mod nat;

use self::nat::{FileNat, file_nat};
use super::{
    Conditions, EndSpec, Link, Location, Model, NatSpec, NodeKind, NodeSpec, RouteSpec, TopologyError,
    TopologyErrorKind,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    local: Option<Spanned<String>>,
    #[serde(default)]
    auto_routes: bool,
    #[serde(default)]
    hostnames: bool,
    #[serde(default)]
    static_arp: bool,
    seed: Option<u64>,
    nodes: Option<Spanned<IndexMap<String, Spanned<Kind>>>>,
    #[serde(default)]
    links: Vec<Spanned<FileLink>>,
    #[serde(default)]
    routes: Vec<Spanned<FileRoute>>,
    /// `[nat]`: router = preset or table.
    nat: Option<IndexMap<String, Spanned<FileNat>>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Host,
    Router,
    Switch,
}

const KINDS: &[&str] = &["host", "router", "switch"];

// By hand, so that a value of the wrong type says what is expected.
impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Kind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"host\", \"router\" or \"switch\"")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Kind, E> {
                match value {
                    "host" => Ok(Kind::Host),
                    "router" => Ok(Kind::Router),
                    "switch" => Ok(Kind::Switch),
                    other => Err(E::unknown_variant(other, KINDS)),
                }
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLink {
    a: String,
    b: String,
    #[serde(default)]
    addrs: BTreeMap<String, OneOrMany>,
    mtu: Option<u32>,
    /// Both directions.
    conditions: Option<Conditions>,
    /// The direction leaving a node: `conditions_from = { client = { delay = "5ms" } }`.
    #[serde(default)]
    conditions_from: BTreeMap<String, Conditions>,
    #[serde(default)]
    capture: bool,
    /// `outages = { every = "10s", for = "1s" }`.
    outages: Option<FileOutages>,
}

/// Periodic outages as a file writes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutages {
    #[serde(deserialize_with = "duration")]
    every: Duration,
    #[serde(rename = "for", deserialize_with = "duration")]
    length: Duration,
}

/// A duration written as everywhere in netns-test: `"10s"`, `"1.5s"`, `"250ms"`.
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::time::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// One address or a list of them.
struct OneOrMany(Vec<String>);

// By hand, so that a value of the wrong type says what is expected (an untagged enum only
// says that no variant matched).
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address such as \"10.0.0.1/24\", or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![value.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut addrs = Vec::new();
                while let Some(addr) = seq.next_element::<String>()? {
                    addrs.push(addr);
                }
                Ok(OneOrMany(addrs))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    node: String,
    to: String,
    via: String,
}

/// Maps byte offsets of a file to line and column.
struct Lines<'a> {
    path: &'a Path,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(path: &'a Path, text: &str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { path, starts }
    }

    fn at(&self, span: Range<usize>) -> Location {
        let line = self.starts.partition_point(|start| *start <= span.start);
        let column = span.start - self.starts[line - 1] + 1;
        Location { file: self.path.to_path_buf(), line, column }
    }
}

/// The dotted key of the value that starts at byte `at` (`mtu`, `addrs.client`,
/// `conditions.delay`), or `None` when `at` is not in a value (a key, a table header): a
/// forward reading of the file up to `at` that follows keys, inline tables and arrays, and skips
/// strings and comments.
fn key_of(text: &str, at: usize) -> Option<String> {
    let bytes = &text.as_bytes()[..at.min(text.len())];
    // The open inline tables and arrays, each with the key it is the value of.
    let mut open: Vec<(u8, Option<String>)> = Vec::new();
    // The key of the value being read at the innermost level, once its `=` is seen.
    let mut key: Option<String> = None;
    // The last bare or quoted word, which becomes the key at the next `=`.
    let mut word = String::new();
    let mut in_word = false;
    let mut line_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let bare = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
        if bare {
            if !in_word {
                word.clear();
            }
            word.push(char::from(c));
            in_word = true;
            line_start = false;
            i += 1;
            continue;
        }
        in_word = false;
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let triple = bytes[i..].starts_with(if c == b'"' { b"\"\"\"" } else { b"'''" });
                let quote_len = if triple { 3 } else { 1 };
                let start = i + quote_len;
                let mut j = start;
                loop {
                    if j >= bytes.len() {
                        // `at` is inside this string.
                        break;
                    }
                    if c == b'"' && bytes[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if bytes[j..].starts_with(&bytes[i..i + quote_len]) {
                        break;
                    }
                    j += 1;
                }
                word = text[start..j.min(bytes.len())].to_string();
                line_start = false;
                i = j + quote_len;
                continue;
            }
            b'=' => key = Some(word.clone()),
            b'[' if open.is_empty() && line_start => {
                // A table header: its keys are not values.
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                key = None;
                continue;
            }
            b'{' | b'[' => open.push((c, key.take())),
            b'}' | b']' => {
                open.pop();
                key = None;
            }
            b',' if matches!(open.last(), Some((b'{', _))) => key = None,
            b'\n' if open.is_empty() => key = None,
            _ => {}
        }
        line_start = c == b'\n' || (line_start && c.is_ascii_whitespace());
        i += 1;
    }
    let in_array = matches!(open.last(), Some((b'[', _)));
    if key.is_none() && !in_array {
        return None;
    }
    let path: Vec<String> = open.into_iter().filter_map(|(_, key)| key).chain(key).collect();
    (!path.is_empty()).then(|| path.join("."))
}

/// Splits "node:interface".
fn endpoint(text: &str) -> EndSpec {
    match text.split_once(':') {
        Some((node, ifname)) => EndSpec {
            node: node.trim().to_string(),
            ifname: Some(ifname.trim().to_string()),
            addrs: Vec::new(),
        },
        None => EndSpec { node: text.trim().to_string(), ifname: None, addrs: Vec::new() },
    }
}

/// Reads a topology file into the model; [`super::Topology::from_toml`] validates it.
pub(super) fn parse(text: &str, path: &Path) -> Result<Model, TopologyError> {
    let lines = Lines::new(path, text);
    let file: File = toml::from_str(text).map_err(|error| {
        let message = error.message().trim();
        let message = match error.span().and_then(|span| key_of(text, span.start)) {
            Some(key) => format!("key `{key}`: {message}"),
            None => message.to_string(),
        };
        TopologyError {
            kind: TopologyErrorKind::Parse { message },
            location: error.span().map(|span| Box::new(lines.at(span))),
        }
    })?;
    // Errors about the nodes as a whole point at the `[nodes]` table, or at the file's start
    // when it has none.
    let nodes_location = Some(match &file.nodes {
        Some(nodes) => lines.at(nodes.span()),
        None => lines.at(0..0),
    });
    let nodes = file
        .nodes
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, kind)| NodeSpec {
            name,
            kind: match *kind.get_ref() {
                Kind::Host => NodeKind::Host,
                Kind::Router => NodeKind::Router,
                Kind::Switch => NodeKind::Switch,
            },
            location: Some(lines.at(kind.span())),
        })
        .collect();
    let links = file
        .links
        .into_iter()
        .map(|spanned| {
            let location = lines.at(spanned.span());
            let link = spanned.into_inner();
            let mut ends = [endpoint(&link.a), endpoint(&link.b)];
            let mut stray_addrs = Vec::new();
            for (node, OneOrMany(addrs)) in link.addrs {
                match ends.iter_mut().find(|end| end.node == node) {
                    Some(end) => end.addrs.extend(addrs),
                    None => stray_addrs.extend(addrs.into_iter().map(|addr| (node.clone(), addr))),
                }
            }
            let mut built = Link {
                ends,
                mtu: link.mtu,
                conditions: Default::default(),
                conditions_given: false,
                stray_conditions: None,
                capture: link.capture,
                outages: link.outages.map(|o| (o.every, o.length)),
                stray_addrs,
                location: Some(location),
            };
            if let Some(conditions) = link.conditions {
                built = built.conditions(conditions);
            }
            for (node, conditions) in link.conditions_from {
                built = built.conditions_from(&node, conditions);
            }
            built
        })
        .collect();
    let routes = file
        .routes
        .into_iter()
        .map(|spanned| {
            let location = lines.at(spanned.span());
            let route = spanned.into_inner();
            RouteSpec { node: route.node, to: route.to, via: route.via, location: Some(location) }
        })
        .collect();
    let local_location = file.local.as_ref().map(|local| lines.at(local.span()));
    let mut nats = Vec::new();
    for (router, spanned) in file.nat.unwrap_or_default() {
        let location = lines.at(spanned.span());
        let nat = file_nat(&router, spanned.into_inner(), &location, &lines)?;
        nats.push(NatSpec { router, nat, location: Some(location) });
    }
    Ok(Model {
        nodes,
        links,
        routes,
        local: file.local.map(Spanned::into_inner),
        auto_routes: file.auto_routes,
        hostnames: file.hostnames,
        static_arp: file.static_arp,
        random_seed: file.seed,
        local_location,
        nodes_location,
        nats,
    })
}
