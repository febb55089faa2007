//! What a failed test's report says about its network: one section per kind of state (the
//! link counters here; features with state of their own add theirs in [`Network::observations`]),
//! then the timeline.

use super::Network;
use crate::conditions::Direction;
use crate::timeline::{Observations, Section};

impl Network {
    /// The network's state and events, for a failure report.
    pub(crate) fn observations(&self) -> Observations {
        Observations {
            sections: vec![
                self.link_counters(),
                self.nat_summaries(),
                self.hook_summaries(),
                self.interface_counters(),
            ],
            timeline: self.timeline().recorded(),
            picture: crate::picture::svg(self.topology()),
        }
    }

    /// One line per interface of each node: the kernel's counters (unreadable ones say why).
    fn interface_counters(&self) -> Section {
        let mut lines = Vec::new();
        for node in self.nodes() {
            for iface in node.interfaces() {
                let counters = match iface.counters() {
                    Ok(counters) => counters.to_string(),
                    Err(error) => format!("unreadable: {error}"),
                };
                lines.push(format!("{}:{}: {counters}", node.name(), iface.name()));
            }
        }
        Section { title: "interface counters".into(), lines }
    }

    /// One line per per-packet hook installed during the test: where, what it decided, and
    /// whether it is still installed, was removed, or panicked.
    fn hook_summaries(&self) -> Section {
        let hooks = self.backend().map(|backend| backend.hooks()).unwrap_or_default();
        let lines = hooks
            .iter()
            .map(|hook| {
                let status = match hook.panic_message() {
                    Some(message) => format!("panicked: {message}"),
                    None if hook.active.load(std::sync::atomic::Ordering::Acquire) => "installed".into(),
                    None => "removed".into(),
                };
                format!("{}: {} ({status})", hook.subject, hook.summary())
            })
            .collect();
        Section { title: "hooks".into(), lines }
    }

    /// The first per-packet hook that panicked: its panic's own message (to find its
    /// location among the panics the runner saw), and the message the test fails with.
    pub(crate) fn hook_panic(&self) -> Option<(String, String)> {
        let hooks = self.backend()?.hooks();
        hooks.iter().find_map(|hook| {
            let message = hook.panic_message()?;
            let failure =
                format!("a per-packet hook on {} ({}) panicked: {message}", hook.subject, hook.description);
            Some((message, failure))
        })
    }

    /// One line per direction of each link the user-space engine carries: what it did to the
    /// frames. Empty without such links (netem counts nothing per link).
    fn link_counters(&self) -> Section {
        let mut lines = Vec::new();
        if let Some(backend) = self.backend() {
            let plan = self.plan();
            for (index, link) in plan.links.iter().enumerate().filter(|(_, link)| link.middle.is_some()) {
                let Ok(counters) = backend.counters(index) else { break };
                let name = |(node, iface): (usize, usize)| {
                    format!("{}:{}", plan.nodes[node].name, plan.nodes[node].ifaces[iface].name)
                };
                let [a, b] = link.ends.map(name);
                for direction in Direction::BOTH {
                    let (from, to) = if direction == Direction::BOTH[0] { (&a, &b) } else { (&b, &a) };
                    lines.push(format!("{from} → {to}: {}", counters[direction.index()]));
                }
            }
        }
        Section { title: "link counters".into(), lines }
    }
}
