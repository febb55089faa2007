//! The `[firewall]` table of topology files: per node, a preset's name, an inline table with
//! a preset or rules and an outside interface, or a list of them.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::topology::firewall::PRESETS;
use crate::topology::{Firewall, FirewallRule, Location, TopologyError, TopologyErrorKind};

/// A node's firewalls: one, or a list; each a preset's name or an inline table. Elements of a
/// list keep their own spans; a single one has the span of the whole value.
pub(super) struct FileFirewalls(pub(super) Vec<(Option<Range<usize>>, FileFirewall)>);

/// One firewall as a file writes it: `"block-inbound"`, or `{ preset = ..., outside = ... }`,
/// or `{ rules = [...], outside = ... }`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileFirewall {
    preset: Option<String>,
    outside: Option<String>,
    #[serde(default)]
    rules: Vec<FileRule>,
}

impl<'de> Deserialize<'de> for FileFirewalls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FileFirewalls;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a firewall preset such as \"block-inbound\", an inline table, or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<FileFirewalls, E> {
                Ok(FileFirewalls(vec![(
                    None,
                    FileFirewall { preset: Some(value.into()), ..Default::default() },
                )]))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FileFirewalls, A::Error> {
                let firewall = FileFirewall::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FileFirewalls(vec![(None, firewall)]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<FileFirewalls, A::Error> {
                let mut firewalls = Vec::new();
                while let Some(one) = seq.next_element::<Spanned<OneFirewall>>()? {
                    let span = one.span();
                    firewalls.push((Some(span), one.into_inner().0));
                }
                Ok(FileFirewalls(firewalls))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One element of a list of firewalls: a preset's name or an inline table.
struct OneFirewall(FileFirewall);

impl<'de> Deserialize<'de> for OneFirewall {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneFirewall;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a firewall preset such as \"block-inbound\", or an inline table")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OneFirewall, E> {
                Ok(OneFirewall(FileFirewall { preset: Some(value.into()), ..Default::default() }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<OneFirewall, A::Error> {
                FileFirewall::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(OneFirewall)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A firewall rule as a file writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    action: FileAction,
    direction: Option<FileDirection>,
    protocol: Option<FileProtocol>,
    from: Option<String>,
    to: Option<String>,
    ports: Option<FilePorts>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileAction {
    Allow,
    Drop,
    Reject,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileDirection {
    Inbound,
    Outbound,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileProtocol {
    Tcp,
    Udp,
    Icmp,
}

/// Ports as a file writes them: `22`, `"22"`, `"8000-8080"`.
struct FilePorts(u16, u16);

impl<'de> Deserialize<'de> for FilePorts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FilePorts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a port such as 22, or a range such as \"8000-8080\"")
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<FilePorts, E> {
                let port =
                    u16::try_from(value).map_err(|_| E::custom(format!("port {value} is not in 0-65535")))?;
                Ok(FilePorts(port, port))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<FilePorts, E> {
                let port = |text: &str| {
                    text.trim()
                        .parse::<u16>()
                        .map_err(|_| E::custom(format!("`{text}` is not a port from 0 to 65535")))
                };
                match value.split_once('-') {
                    Some((first, last)) => Ok(FilePorts(port(first)?, port(last)?)),
                    None => port(value).map(|p| FilePorts(p, p)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl FileFirewall {
    /// The firewall, or the error of an unknown preset (at `location`).
    pub(super) fn into_firewall(self, location: Location) -> Result<Firewall, TopologyError> {
        let mut firewall = match &self.preset {
            Some(name) => match PRESETS.iter().find(|(preset, _)| preset == name) {
                Some((_, make)) => make(),
                None => {
                    let known = crate::error::name_list(PRESETS.iter().map(|(name, _)| *name));
                    let kind = TopologyErrorKind::UnknownFirewallPreset { name: name.clone(), known };
                    return Err(TopologyError { kind, location: Some(Box::new(location)) });
                }
            },
            None => Firewall::new(),
        };
        for rule in self.rules {
            let mut built = match rule.action {
                FileAction::Allow => FirewallRule::allow(),
                FileAction::Drop => FirewallRule::drop(),
                FileAction::Reject => FirewallRule::reject(),
            };
            built = match rule.direction {
                Some(FileDirection::Inbound) => built.inbound(),
                Some(FileDirection::Outbound) => built.outbound(),
                None => built,
            };
            built = match rule.protocol {
                Some(FileProtocol::Tcp) => built.tcp(),
                Some(FileProtocol::Udp) => built.udp(),
                Some(FileProtocol::Icmp) => built.icmp(),
                None => built,
            };
            if let Some(from) = rule.from {
                built = built.from(from);
            }
            if let Some(to) = rule.to {
                built = built.to(to);
            }
            if let Some(FilePorts(first, last)) = rule.ports {
                built = built.ports(first..=last);
            }
            firewall = firewall.rule(built);
        }
        if let Some(outside) = self.outside {
            firewall = firewall.outside(outside);
        }
        firewall.location = Some(location);
        Ok(firewall)
    }
}
