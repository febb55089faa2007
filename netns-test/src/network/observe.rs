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
            sections: vec![self.link_counters()],
            timeline: self.timeline().recorded(),
            picture: crate::picture::svg(self.topology()),
        }
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
