//! Node and interface names: node names become hostnames and hosts-file entries; interface
//! names are checked as the kernel checks them.

use std::collections::HashSet;

use super::BRIDGE_NAME;
use crate::topology::TopologyErrorKind;

pub(super) fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "it is {} bytes long; node names become hostnames, at most 63 bytes",
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!("character {bad:?} is not allowed; use letters, digits, `-` and `_`"));
    }
    if name.starts_with('-') {
        return Err("it starts with `-`".into());
    }
    Ok(())
}

/// Checks an interface name as the kernel's `dev_valid_name` does, and refuses the names the
/// kernel would rename or reject later, when the interface is created.
pub(super) fn check_ifname(node: &str, name: &str, is_switch: bool) -> Result<(), TopologyErrorKind> {
    let invalid = |reason: String| TopologyErrorKind::InvalidInterfaceName {
        node: node.to_string(),
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if name.len() > 15 {
        return Err(TopologyErrorKind::InterfaceNameTooLong {
            node: node.into(),
            name: name.into(),
            len: name.len(),
        });
    }
    if name == "." || name == ".." {
        return Err(invalid("`.` and `..` are not interface names".into()));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(invalid("`/`, `:` and whitespace are not allowed".into()));
    }
    // The kernel's isspace() also counts byte 0xA0, which is part of the UTF-8 encoding of
    // characters such as `à`.
    if let Some(c) = name.chars().find(|c| c.encode_utf8(&mut [0; 4]).bytes().any(|b| b == 0xA0)) {
        return Err(invalid(format!(
            "character {c:?} is encoded with byte 0xA0, which Linux counts as whitespace in interface names"
        )));
    }
    if name.contains('%') {
        return Err(invalid(
            "`%` is not allowed: Linux reads it as a number to fill in and renames the interface \
             (`e%d` becomes `e0`)"
                .into(),
        ));
    }
    if name == "all" || name == "default" {
        return Err(invalid(format!(
            "`{name}` is reserved: /proc/sys/net/ipv4/conf/{name} and /proc/sys/net/ipv6/conf/{name} hold \
             the settings of every interface, and Linux refuses an interface of that name"
        )));
    }
    if name == "lo" || (is_switch && name == BRIDGE_NAME) {
        return Err(invalid("the name is already taken by the node's own device".into()));
    }
    Ok(())
}

/// The interface names a node has so far, and where to look for its next default name.
#[derive(Default)]
pub(super) struct IfaceNames {
    pub(super) taken: HashSet<String>,
    /// Every `eth<k>` below this is taken: names are only ever added.
    next_default: usize,
}

impl IfaceNames {
    /// The first free name among `eth0`, `eth1`, ...
    pub(super) fn next_default(&mut self) -> String {
        loop {
            let candidate = format!("eth{}", self.next_default);
            self.next_default += 1;
            if !self.taken.contains(&candidate) {
                return candidate;
            }
        }
    }
}
