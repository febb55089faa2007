//! The `[nat]` table of a topology file: a preset's name, or a table with `preset` or
//! `mapping` and `filtering`, and the options.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Lines, duration};
use crate::topology::{Filtering, Location, Mapping, Nat, TopologyError, TopologyErrorKind};

/// A NAT as a file writes it: a preset's name, or a table.
pub(super) enum FileNat {
    Preset(String),
    Table(Box<FileNatTable>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileNatTable {
    preset: Option<Spanned<String>>,
    mapping: Option<FileDependence>,
    filtering: Option<FileDependence>,
    hairpin: Option<bool>,
    port_preservation: Option<bool>,
    #[serde(default, deserialize_with = "optional_duration")]
    udp_timeout: Option<Duration>,
    outside: Option<String>,
    /// `"1024-4095"`.
    ports: Option<Spanned<String>>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

// By hand, so that a value of the wrong type says what is expected.
impl<'de> Deserialize<'de> for FileNat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FileNat;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a NAT preset such as \"port-restricted\", or a table with `preset` or `mapping` and `filtering`")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<FileNat, E> {
                Ok(FileNat::Preset(value.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FileNat, A::Error> {
                FileNatTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|table| FileNat::Table(Box::new(table)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A mapping or filtering behaviour in RFC 4787's words.
#[derive(Clone, Copy)]
struct FileDependence(u8);

const DEPENDENCES: &[&str] = &["endpoint-independent", "address-dependent", "address-and-port-dependent"];

impl<'de> Deserialize<'de> for FileDependence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match DEPENDENCES.iter().position(|name| *name == text) {
            Some(index) => Ok(FileDependence(index as u8)),
            None => Err(serde::de::Error::unknown_variant(&text, DEPENDENCES)),
        }
    }
}

/// The [`Nat`] a `[nat]` entry of `router` at `location` describes.
pub(super) fn file_nat(
    router: &str,
    nat: FileNat,
    location: &Location,
    lines: &Lines<'_>,
) -> Result<Nat, TopologyError> {
    let preset = |name: &str, at: Location| {
        Nat::preset(name).ok_or_else(|| TopologyError {
            kind: TopologyErrorKind::UnknownNatPreset {
                router: router.to_string(),
                name: name.to_string(),
                known: Nat::PRESETS.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
            },
            location: Some(Box::new(at)),
        })
    };
    let invalid = |reason: String, at: Location| TopologyError {
        kind: TopologyErrorKind::InvalidNat { router: router.to_string(), reason },
        location: Some(Box::new(at)),
    };
    let table = match nat {
        FileNat::Preset(name) => return preset(&name, location.clone()),
        FileNat::Table(table) => table,
    };
    let mut nat = match (&table.preset, table.mapping, table.filtering) {
        (Some(name), None, None) => preset(name.get_ref(), lines.at(name.span()))?,
        (None, Some(mapping), Some(filtering)) => {
            Nat::new(Mapping::ALL[usize::from(mapping.0)], Filtering::ALL[usize::from(filtering.0)])
        }
        (Some(_), _, _) => {
            return Err(invalid(
                "give either `preset` or `mapping` and `filtering`, not both".into(),
                location.clone(),
            ));
        }
        (None, _, _) => {
            return Err(invalid("give `preset`, or both `mapping` and `filtering`".into(), location.clone()));
        }
    };
    if let Some(on) = table.hairpin {
        nat = nat.hairpin(on);
    }
    if let Some(on) = table.port_preservation {
        nat = nat.port_preservation(on);
    }
    if let Some(timeout) = table.udp_timeout {
        nat = nat.udp_timeout(timeout);
    }
    if let Some(outside) = table.outside {
        nat = nat.outside(outside);
    }
    if let Some(ports) = table.ports {
        let at = lines.at(ports.span());
        let text = ports.into_inner();
        let parsed = text.split_once('-').and_then(|(first, last)| {
            Some((first.trim().parse::<u16>().ok()?, last.trim().parse::<u16>().ok()?))
        });
        let Some((first, last)) = parsed else {
            return Err(invalid(format!("`ports = \"{text}\"` is not a range such as \"1024-4095\""), at));
        };
        nat = nat.ports(first..=last);
    }
    Ok(nat)
}
