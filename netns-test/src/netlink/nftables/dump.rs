//! Reading rules back (`nft list chain`): the dump request and the rules in its answer, with
//! their counters, for "drops by rule".

use std::io;

use super::Family;
use super::attr::{self, Writer};
use super::batch::{check_name, message};
use super::expr::Verdict;
use super::sys::*;

/// A counter's values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counter {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
}

/// A rule as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleDump {
    pub(crate) family: Family,
    pub(crate) table: String,
    pub(crate) chain: String,
    /// The kernel's handle of the rule (for `delete rule ... handle`).
    pub(crate) handle: u64,
    pub(crate) comment: Option<String>,
    /// The rule's first counter, if it has one.
    pub(crate) counter: Option<Counter>,
    /// The rule's verdict, if it ends with one.
    pub(crate) verdict: Option<Verdict>,
    /// The names of its expressions, in order (`meta`, `cmp`, `counter`...).
    pub(crate) expressions: Vec<String>,
}

/// `NFT_MSG_GETTABLE`, or `NFT_MSG_GETCHAIN` with a `chain`, asking for an acknowledgement:
/// whether they exist, which a dump does not tell (it is merely empty), as nft asks first.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] for a name nftables refuses, naming it.
pub(crate) fn exists_request(
    family: Family,
    table: &str,
    chain: Option<&str>,
    seq: u32,
) -> io::Result<Vec<u8>> {
    check_name("table", table)?;
    let mut attrs = Vec::new();
    let mut out = Writer::new(&mut attrs);
    let kind = match chain {
        None => {
            out.string(NFTA_TABLE_NAME, table);
            NFT_MSG_GETTABLE
        }
        Some(chain) => {
            check_name("chain", chain)?;
            out.string(NFTA_CHAIN_TABLE, table);
            out.string(NFTA_CHAIN_NAME, chain);
            NFT_MSG_GETCHAIN
        }
    };
    let mut bytes = Vec::new();
    message(
        &mut bytes,
        (NFNL_SUBSYS_NFTABLES << 8) | kind,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        family as u8,
        0,
        &attrs,
    );
    Ok(bytes)
}

/// `NFT_MSG_GETRULE` as a dump of the rules of `table` (of `chain` only, if given), as
/// `nft list chain` asks for them.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] for a name nftables refuses, naming it.
pub(crate) fn request(family: Family, table: &str, chain: Option<&str>, seq: u32) -> io::Result<Vec<u8>> {
    check_name("table", table)?;
    let mut attrs = Vec::new();
    let mut out = Writer::new(&mut attrs);
    out.string(NFTA_RULE_TABLE, table);
    if let Some(chain) = chain {
        check_name("chain", chain)?;
        out.string(NFTA_RULE_CHAIN, chain);
    }
    let mut bytes = Vec::new();
    let kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE;
    message(&mut bytes, kind, NLM_F_REQUEST | NLM_F_DUMP, seq, family as u8, 0, &attrs);
    Ok(bytes)
}

/// The rule in the payload of an `NFT_MSG_NEWRULE` message (after its `nlmsghdr`), or `None`
/// if it is not one this crate can read (an unknown family, no table or chain).
pub(crate) fn parse_rule(payload: &[u8]) -> Option<RuleDump> {
    let family = Family::from_number(*payload.first()?)?;
    let attrs = payload.get(NFGENMSG_LEN..)?;
    let mut rule = RuleDump {
        family,
        table: attr::string(attr::find(attrs, NFTA_RULE_TABLE)?),
        chain: attr::string(attr::find(attrs, NFTA_RULE_CHAIN)?),
        handle: attr::find(attrs, NFTA_RULE_HANDLE).and_then(attr::be64).unwrap_or(0),
        comment: attr::find(attrs, NFTA_RULE_USERDATA).and_then(comment),
        counter: None,
        verdict: None,
        expressions: Vec::new(),
    };
    let exprs = attr::find(attrs, NFTA_RULE_EXPRESSIONS).unwrap_or(&[]);
    for (_, elem) in attr::attributes(exprs).filter(|(kind, _)| *kind == NFTA_LIST_ELEM) {
        let name = attr::find(elem, NFTA_EXPR_NAME).map(attr::string).unwrap_or_default();
        let data = attr::find(elem, NFTA_EXPR_DATA).unwrap_or(&[]);
        match name.as_str() {
            "counter" if rule.counter.is_none() => {
                rule.counter = Some(Counter {
                    packets: attr::find(data, NFTA_COUNTER_PACKETS).and_then(attr::be64).unwrap_or(0),
                    bytes: attr::find(data, NFTA_COUNTER_BYTES).and_then(attr::be64).unwrap_or(0),
                });
            }
            "immediate" => {
                let to_verdict = attr::find(data, NFTA_IMMEDIATE_DREG).and_then(attr::be32) == Some(0);
                let verdict =
                    attr::find(data, NFTA_IMMEDIATE_DATA).and_then(|d| attr::find(d, NFTA_DATA_VERDICT));
                if let (true, Some(verdict)) = (to_verdict, verdict) {
                    let code = attr::find(verdict, NFTA_VERDICT_CODE).and_then(attr::be32).map(|c| c as i32);
                    let chain = attr::find(verdict, NFTA_VERDICT_CHAIN).map(attr::string);
                    rule.verdict = code.and_then(|code| Verdict::from_code(code, chain));
                }
            }
            _ => {}
        }
        rule.expressions.push(name);
    }
    Some(rule)
}

/// The comment in libnftnl's rule user data (type-length-value records).
fn comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while let [kind, len, tail @ ..] = rest {
        let value = tail.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(attr::string(value));
        }
        rest = &tail[value.len()..];
    }
    None
}
