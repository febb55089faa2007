//! Batches: the transactions nftables applies whole or not at all, and the messages in them.

use std::io;

use super::attr::Writer;
use super::rule::Rule;
use super::sys::*;
use super::{BaseChain, Family};

/// One message of a batch, for matching the kernel's answer to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) seq: u32,
    /// The request in nft's words (`add chain inet t c`), for error messages.
    pub(crate) what: String,
}

/// A list of changes the kernel applies atomically: all of them, or (if one fails) none.
///
/// Messages are numbered from 1 as nft numbers them (the batch's begin is 0, its end follows
/// the last message), so an encoded batch without acknowledgements is byte-for-byte what nft
/// sends for the same commands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch {
    messages: Vec<(u16, u16, Family, Vec<u8>)>,
    requests: Vec<Request>,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch::default()
    }

    /// The requests, in order.
    pub(crate) fn requests(&self) -> &[Request] {
        &self.requests
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn push(&mut self, kind: u16, flags: u16, family: Family, attrs: Vec<u8>, what: String) {
        self.messages.push((kind, flags, family, attrs));
        self.requests.push(Request { seq: self.messages.len() as u32, what });
    }

    /// `nft add table <family> <name>`.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for a name nftables refuses, naming it.
    pub(crate) fn add_table(&mut self, family: Family, name: &str) -> io::Result<()> {
        check_name("table", name)?;
        let mut attrs = Vec::new();
        let mut out = Writer::new(&mut attrs);
        out.string(NFTA_TABLE_NAME, name);
        out.be32(NFTA_TABLE_FLAGS, 0);
        self.push(NFT_MSG_NEWTABLE, NLM_F_REQUEST, family, attrs, format!("add table {family} {name}"));
        Ok(())
    }

    /// `nft add chain <family> <table> <name>`, with `{ type ... hook ... priority ...;
    /// policy ...; }` for a base chain.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for a name nftables refuses, naming it.
    pub(crate) fn add_chain(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
        base: Option<&BaseChain>,
    ) -> io::Result<()> {
        check_name("table", table)?;
        check_name("chain", name)?;
        let mut attrs = Vec::new();
        let mut out = Writer::new(&mut attrs);
        out.string(NFTA_CHAIN_TABLE, table);
        out.string(NFTA_CHAIN_NAME, name);
        if let Some(base) = base {
            out.string(NFTA_CHAIN_TYPE, base.kind.name());
            if let Some(policy) = base.policy {
                out.be32(NFTA_CHAIN_POLICY, policy as u32);
            }
            out.nested(NFTA_CHAIN_HOOK, |hook| {
                hook.be32(NFTA_HOOK_HOOKNUM, base.hook as u32);
                hook.be32(NFTA_HOOK_PRIORITY, base.priority as u32);
            });
        }
        let flags = NLM_F_REQUEST | NLM_F_CREATE;
        self.push(NFT_MSG_NEWCHAIN, flags, family, attrs, format!("add chain {family} {table} {name}"));
        Ok(())
    }

    /// `nft add rule <family> <table> <chain> ...`: appends `rule` to its chain.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for a rule with an argument nftables refuses (an
    /// interface name too long, an inverted port range...), naming it.
    pub(crate) fn add_rule(&mut self, rule: &Rule) -> io::Result<()> {
        let (family, table, chain) = (rule.family, &rule.table, &rule.chain);
        check_name("table", table)?;
        check_name("chain", chain)?;
        if let Some(invalid) = &rule.invalid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a rule for chain {family} {table} {chain} has an invalid {invalid}"),
            ));
        }
        let mut attrs = Vec::new();
        let mut out = Writer::new(&mut attrs);
        out.string(NFTA_RULE_TABLE, table);
        out.string(NFTA_RULE_CHAIN, chain);
        out.nested(NFTA_RULE_EXPRESSIONS, |list| {
            for expr in &rule.exprs {
                expr.encode(list);
            }
        });
        if let Some(comment) = &rule.comment {
            // libnftnl's user data: type, length (with the NUL), text.
            let mut udata = vec![NFTNL_UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
            udata.extend_from_slice(comment.as_bytes());
            udata.push(0);
            out.bytes(NFTA_RULE_USERDATA, &udata);
        }
        let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND;
        let what = match &rule.comment {
            Some(comment) => format!("add rule {family} {table} {chain} (comment {comment:?})"),
            None => format!("add rule {family} {table} {chain} (#{} of the batch)", self.messages.len() + 1),
        };
        self.push(NFT_MSG_NEWRULE, flags, family, attrs, what);
        Ok(())
    }

    /// `nft delete rule <family> <table> <chain> handle <handle>`.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for a name nftables refuses, naming it.
    pub(crate) fn delete_rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        handle: u64,
    ) -> io::Result<()> {
        check_name("table", table)?;
        check_name("chain", chain)?;
        let mut attrs = Vec::new();
        let mut out = Writer::new(&mut attrs);
        out.string(NFTA_RULE_TABLE, table);
        out.string(NFTA_RULE_CHAIN, chain);
        out.be64(NFTA_RULE_HANDLE, handle);
        let what = format!("delete rule {family} {table} {chain} handle {handle}");
        self.push(NFT_MSG_DELRULE, NLM_F_REQUEST, family, attrs, what);
        Ok(())
    }

    /// `nft delete table <family> <name>`, with everything in it.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for a name nftables refuses, naming it.
    pub(crate) fn delete_table(&mut self, family: Family, name: &str) -> io::Result<()> {
        check_name("table", name)?;
        let mut attrs = Vec::new();
        Writer::new(&mut attrs).string(NFTA_TABLE_NAME, name);
        self.push(NFT_MSG_DELTABLE, NLM_F_REQUEST, family, attrs, format!("delete table {family} {name}"));
        Ok(())
    }

    /// The batch on the wire: begin, the messages, end. With `ack`, every message asks for an
    /// acknowledgement (nft asks for none and reads only errors), so that the sender knows
    /// when the kernel has answered all of them.
    pub(crate) fn encode(&self, ack: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let subsystem = NFNL_SUBSYS_NFTABLES;
        message(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, 0, subsystem, &[]);
        for (seq, (kind, flags, family, attrs)) in self.messages.iter().enumerate() {
            let flags = if ack { flags | NLM_F_ACK } else { *flags };
            message(&mut out, (subsystem << 8) | kind, flags, seq as u32 + 1, *family as u8, 0, attrs);
        }
        let end = self.messages.len() as u32 + 1;
        message(&mut out, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, subsystem, &[]);
        out
    }
}

/// Appends a netfilter netlink message: `nlmsghdr`, `nfgenmsg`, attributes.
pub(crate) fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = (NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len()) as u32;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    // The port id: 0 lets the kernel fill in the socket's.
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

/// A table or chain name nftables takes: 1 to 255 bytes, no NUL.
pub(crate) fn check_name(what: &str, name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() >= NFT_NAME_MAXLEN || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "invalid nftables {what} name {name:?}: it must have 1 to {} bytes and no NUL",
                NFT_NAME_MAXLEN - 1
            ),
        ));
    }
    Ok(())
}
