//! Policy routing for NAT routers: `ip rule` and routes in a table of their own.

use std::net::Ipv4Addr;

use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};

use super::At;
use crate::error::{Error, Result};

/// The kernel's `local` table (`RT_TABLE_LOCAL`).
const LOCAL_TABLE: u32 = 255;

impl At<'_> {
    /// `ip rule add pref <pref> lookup local; ip rule del pref 0 lookup local`: moves the
    /// IPv4 lookup of local addresses after the rules that must come before it.
    pub(crate) async fn move_local_rule(&self, pref: u32) -> Result<()> {
        self.handle
            .rule()
            .add()
            .v4()
            .table_id(LOCAL_TABLE)
            .priority(pref)
            .action(RuleAction::ToTable)
            .execute()
            .await
            .map_err(|source| {
                Error::netlink(self.node, format!("ip rule add pref {pref} lookup local"), source)
            })?;
        let mut rule = RuleMessage::default();
        rule.header.family = AddressFamily::Inet;
        rule.header.table = LOCAL_TABLE as u8;
        rule.header.action = RuleAction::ToTable;
        rule.attributes.push(RuleAttribute::Priority(0));
        rule.attributes.push(RuleAttribute::Table(LOCAL_TABLE));
        self.handle
            .rule()
            .del(rule)
            .execute()
            .await
            .map_err(|source| Error::netlink(self.node, "ip rule del pref 0 lookup local", source))
    }

    /// `ip rule add pref <pref> iif <iif> to <to>/32 lookup <table>`.
    pub(crate) async fn add_rule_to(&self, pref: u32, iif: &str, to: Ipv4Addr, table: u32) -> Result<()> {
        self.handle
            .rule()
            .add()
            .v4()
            .priority(pref)
            .input_interface(iif)
            .destination_prefix(to, 32)
            .table_id(table)
            .action(RuleAction::ToTable)
            .execute()
            .await
            .map_err(|source| {
                Error::netlink(
                    self.node,
                    format!("ip rule add pref {pref} iif {iif} to {to} lookup {table}"),
                    source,
                )
            })
    }

    /// `ip route add <to>/32 dev <index> table <table>`.
    pub(crate) async fn add_device_route(
        &self,
        to: Ipv4Addr,
        index: u32,
        name: &str,
        table: u32,
    ) -> Result<()> {
        let message = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(to, 32)
            .output_interface(index)
            .scope(RouteScope::Link)
            .table_id(table)
            .build();
        self.handle.route().add(message).execute().await.map_err(|source| {
            Error::netlink(self.node, format!("ip route add {to} dev {name} table {table}"), source)
        })
    }
}
