//! A namespace's interfaces, addresses and routes as stable text, for `Network::dump`.

use std::net::IpAddr;

use futures_util::StreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, RouteMessageBuilder};

use super::LinkStatus;

/// Interfaces (state, MTU, addresses) and routes of one namespace, as sorted text lines.
pub(crate) async fn dump(handle: &Handle) -> std::result::Result<String, rtnetlink::Error> {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol, RouteType};

    let mut names: BTreeMap<u32, (String, String)> = BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.next().await {
        let link = link?;
        let name = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        });
        let mtu = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        });
        let mac = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(mac) => {
                Some(mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
            }
            _ => None,
        });
        let status = LinkStatus::from_message(&link);
        let state = if status.up && status.lower_up {
            "UP"
        } else if status.up {
            "NO-CARRIER"
        } else {
            "DOWN"
        };
        let line = format!("{state} mtu {} {}", mtu.unwrap_or(0), mac.unwrap_or_default());
        names.insert(link.header.index, (name.unwrap_or_else(|| link.header.index.to_string()), line));
    }
    let mut addresses: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut dump = handle.address().get().execute();
    while let Some(address) = dump.next().await {
        let address = address?;
        let ip = address.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = ip {
            // Link-local addresses are derived from random MAC addresses: not comparable.
            if matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()) {
                continue;
            }
            addresses
                .entry(address.header.index)
                .or_default()
                .push(format!("{ip}/{}", address.header.prefix_len));
        }
    }
    let mut text = String::new();
    for (index, (name, line)) in &names {
        let mut addrs = addresses.remove(index).unwrap_or_default();
        addrs.sort();
        let _ = writeln!(text, "  {name} {line} {}", addrs.join(" "));
    }
    let mut routes = Vec::new();
    for family in [IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)] {
        let message = match family {
            IpAddr::V4(_) => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            IpAddr::V6(_) => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        };
        let mut dump = handle.route().get(message).execute();
        while let Some(route) = dump.next().await {
            let route = route?;
            if route.header.kind != RouteType::Unicast {
                continue;
            }
            let address = |a: &RouteAddress| match a {
                RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
                RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
                _ => None,
            };
            let destination = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(d) => address(d),
                _ => None,
            });
            if matches!(destination, Some(IpAddr::V6(v6)) if v6.is_unicast_link_local()) {
                continue;
            }
            let gateway = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => address(g),
                _ => None,
            });
            let device = route.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => names.get(index).map(|(name, _)| name.clone()),
                _ => None,
            });
            let destination = match destination {
                Some(ip) => format!("{ip}/{}", route.header.destination_prefix_length),
                None => "default".to_string(),
            };
            let mut line = format!("  route {destination}");
            if let Some(gateway) = gateway {
                let _ = write!(line, " via {gateway}");
            }
            if let Some(device) = device {
                let _ = write!(line, " dev {device}");
            }
            if route.header.protocol == RouteProtocol::Kernel {
                line.push_str(" proto kernel");
            }
            routes.push(line);
        }
    }
    routes.sort();
    for route in routes {
        let _ = writeln!(text, "{route}");
    }
    Ok(text)
}
