//! The backend that carries the links with conditions of one network: the choice between the
//! user-space engine and netem, the middle namespace, the seed that makes a run replayable,
//! and the packet captures.
//!
//! A link with conditions (or a capture) is built as `A:eth ⇄ middle:m<i>a` and
//! `middle:m<i>b ⇄ B:eth`; the nodes see an ordinary veth interface. In the middle namespace,
//! either the user-space engine forwards between `m<i>a` and `m<i>b` through packet sockets,
//! or a bridge joins them with a netem qdisc on each (where the kernel has `sch_netem`).

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::{Engine, Installed, LinkId, LinkSpec, NatPort};
use super::nat::{NatConfig, Translator};
use super::netem::{NetemOptions, apply as apply_netem, netem_available};
use super::packet::Port;
use crate::conditions::{Conditions, Direction, DirectionCounters, ValidConditions};
use crate::error::{Error, Result};
use crate::netlink::{At, NetlinkRuntime, NodeNetlink};
use crate::ns::NsFds;
use crate::packets::{Hook, HookState};
use crate::settings::{LinkEngine, Settings};
use crate::timeline::Timeline;
use crate::topology::{Device, Middle, Plan, PlannedLink};

/// What carries the links with conditions.
#[derive(Debug)]
enum How {
    /// The user-space engine; the id of each carried link, by plan link index.
    Engine { engine: Engine, ids: Vec<Option<LinkId>> },
    /// netem qdiscs in the middle namespace.
    Netem,
}

impl How {
    fn kind(&self) -> Kind {
        match self {
            How::Engine { .. } => Kind::Engine,
            How::Netem => Kind::Netem,
        }
    }
}

/// The links with conditions of one network.
#[derive(Debug)]
pub(crate) struct Backend {
    middle: Arc<NsFds>,
    netlink: NodeNetlink,
    how: How,
    seed: u64,
    captures: Vec<PathBuf>,
    /// The links attached at runtime ([`Backend::attach_runtime`]), by link key: the
    /// engine's id and the link's label.
    runtime: std::sync::Mutex<std::collections::HashMap<usize, (LinkId, String)>>,
    /// The translator of each NAT of the plan, in its order.
    nats: Vec<Arc<std::sync::Mutex<Translator>>>,
}

/// The seed of a network's link conditions: `replay` (`NETNS_TEST_SEED`), else the
/// topology's, else a new one.
pub(crate) fn network_seed(replay: Option<u64>, topology_seed: Option<u64>) -> u64 {
    replay.or(topology_seed).unwrap_or_else(|| std::collections::hash_map::RandomState::new().hash_one(0u8))
}

/// The seed of link `index`, derived from the network's (splitmix64), so that links of one
/// network do not share their random streams.
fn link_seed(network: u64, index: usize) -> u64 {
    let mut z = network.wrapping_add((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the port allocation of NAT `index`, derived from the network's like a link's,
/// on a stream of its own (counted down from `usize::MAX - 1`, where no link index reaches).
pub(crate) fn nat_seed(network: u64, index: usize) -> u64 {
    link_seed(network, usize::MAX - 1 - index)
}

/// Where a test's artifacts go: `setting` (`NETNS_TEST_ARTIFACTS`), else `target/netns-test/`
/// next to the test binary (`target/<profile>/deps/`), else the temporary directory.
pub(crate) fn artifacts_dir(setting: Option<&Path>, test: &str) -> PathBuf {
    let base = setting.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| {
                let deps = exe.parent()?;
                let target = deps.parent()?.parent()?;
                (deps.file_name()? == "deps").then(|| target.join("netns-test"))
            })
            .unwrap_or_else(|| std::env::temp_dir().join("netns-test"))
    });
    let name: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    base.join(name)
}

/// The two ways of carrying links with conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The user-space engine.
    Engine,
    /// netem qdiscs.
    Netem,
}

/// Why a backend was chosen, for the one line a test prints about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// `NETNS_TEST_LINK_ENGINE` asked for it.
    Asked,
    /// A link is captured, which only the engine can do.
    Captures,
    /// A link's conditions spare neighbour discovery from loss, duplication or corruption,
    /// which only the engine can do.
    SparesNeighbours,
    /// A link's conditions have a buffer sized in time, which only the engine has.
    Buffer,
    /// A NAT translates in the engine.
    Nat,
    /// The kernel has netem.
    KernelHasNetem,
    /// The kernel has no netem (the full reason and remedy are in `cargo xtask doctor`).
    NetemMissing,
    /// The netem probe itself failed.
    NetemUnprobed,
}

/// What the links with conditions of one network ask of their backend.
#[derive(Clone, Copy, Debug, Default)]
struct Needs {
    /// A link is captured.
    capture: bool,
    /// A link's conditions spare neighbour discovery from loss, duplication or corruption.
    spare_neighbours: bool,
    /// A link's conditions size the rate limiter's queue in time.
    buffer: bool,
    /// The topology has a NAT, which translates in the engine.
    nat: bool,
}

impl Needs {
    fn of(plan: &Plan, carried: &[usize], captured: impl Fn(&PlannedLink) -> bool) -> Needs {
        let links = || carried.iter().map(|&index| &plan.links[index]);
        Needs {
            capture: links().any(captured),
            spare_neighbours: links()
                .flat_map(|link| &link.conditions)
                .any(|conditions| conditions.spares_neighbour_discovery()),
            buffer: links().flat_map(|link| &link.conditions).any(|conditions| conditions.buffer.is_some()),
            nat: !plan.nats.is_empty(),
        }
    }
}

/// The backend chosen for one network, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Choice {
    backend: Kind,
    why: Why,
    /// netem was asked for although a link's conditions would spare neighbour discovery.
    impairs_neighbours: bool,
}

impl Choice {
    /// One short line: the backend and why, without the netem remedy (that is in
    /// `cargo xtask doctor`, and in the error when netem was asked for and is missing).
    fn summary(&self) -> String {
        let backend = match self.backend {
            Kind::Engine => "user-space engine",
            Kind::Netem => "netem",
        };
        let why = match (self.why, self.backend) {
            (Why::Asked, Kind::Engine) => " (NETNS_TEST_LINK_ENGINE=userspace)",
            (Why::Asked, Kind::Netem) => " (NETNS_TEST_LINK_ENGINE=netem)",
            (Why::Captures, _) => " (captures need it)",
            (Why::SparesNeighbours, _) => " (netem cannot spare ARP and neighbour discovery)",
            (Why::Buffer, _) => " (netem has no buffer sized in time)",
            (Why::Nat, _) => " (a NAT translates in it)",
            (Why::KernelHasNetem, _) => "",
            (Why::NetemMissing, _) => "; netem unavailable, see `cargo xtask doctor`",
            (Why::NetemUnprobed, _) => "; netem could not be probed, see `cargo xtask doctor`",
        };
        let caveat = if self.impairs_neighbours {
            "; loss, duplicate and corrupt hit ARP and neighbour discovery too"
        } else {
            ""
        };
        format!("{backend}{why}{caveat}")
    }
}

/// Which backend the setting of `NETNS_TEST_LINK_ENGINE`, what the links need and the kernel
/// choose. `auto` takes netem only when the kernel has it and no link needs the engine: a
/// capture, conditions that spare neighbour discovery, or a buffer sized in time. `netem` says whether the kernel has
/// netem; it is asked only when the answer matters.
///
/// # Errors
/// netem asked for with a capture; netem asked for on a kernel without it
/// ([`Error::Unsupported`] with the full reason and remedy).
fn choose(setting: LinkEngine, needs: Needs, netem: impl FnOnce() -> Result<()>) -> Result<Choice> {
    let choice = |backend, why| Ok(Choice { backend, why, impairs_neighbours: false });
    match setting {
        LinkEngine::Userspace => choice(Kind::Engine, Why::Asked),
        LinkEngine::Netem => {
            if needs.capture {
                return Err(Error::Unsupported {
                    feature: "capture with netem".into(),
                    reason:
                        "netem forwards in the kernel, where nothing sees the frames; use the user-space \
                             engine (NETNS_TEST_LINK_ENGINE=auto or userspace)"
                            .into(),
                });
            }
            if needs.nat {
                return Err(Error::Unsupported {
                    feature: "NAT with netem".into(),
                    reason: "a NAT translates in the user-space engine, on its router's outside link; \
                             use NETNS_TEST_LINK_ENGINE=auto or userspace"
                        .into(),
                });
            }
            netem()?;
            Ok(Choice { backend: Kind::Netem, why: Why::Asked, impairs_neighbours: needs.spare_neighbours })
        }
        LinkEngine::Auto => {
            if needs.capture {
                return choice(Kind::Engine, Why::Captures);
            }
            if needs.spare_neighbours {
                return choice(Kind::Engine, Why::SparesNeighbours);
            }
            if needs.buffer {
                return choice(Kind::Engine, Why::Buffer);
            }
            if needs.nat {
                return choice(Kind::Engine, Why::Nat);
            }
            match netem() {
                Ok(()) => choice(Kind::Netem, Why::KernelHasNetem),
                Err(Error::Unsupported { .. }) => choice(Kind::Engine, Why::NetemMissing),
                Err(_) => choice(Kind::Engine, Why::NetemUnprobed),
            }
        }
    }
}

/// A change of one direction's conditions, made ready for the backend that carries the link.
#[derive(Debug, PartialEq)]
enum Change {
    Engine(ValidConditions),
    Netem(NetemOptions),
}

/// Validates `conditions` for direction `direction` of link `label`, the same way whatever the
/// backend, then turns them into what `backend` applies. Validation comes first so that an
/// invalid value is the same [`Error::InvalidConditions`] on every backend: netem's encoding
/// would otherwise clamp it silently.
fn prepare(
    backend: Kind,
    label: &str,
    direction: Direction,
    conditions: Conditions,
    seed: u64,
) -> Result<Change> {
    let conditions = ValidConditions::new(conditions).map_err(|source| Error::InvalidConditions {
        link: label.to_string(),
        direction,
        source,
    })?;
    match backend {
        Kind::Engine => Ok(Change::Engine(conditions)),
        Kind::Netem => Ok(Change::Netem(NetemOptions::from_conditions(&conditions, seed)?)),
    }
}

/// The name of the middle namespace in messages.
pub(crate) const MIDDLE: &str = "middle";

impl Backend {
    /// Starts carrying every link of `plan` that crosses the middle namespace (whose veths are
    /// made and up), with `seed`; `test` names the directory of the captures, and `settings`
    /// say which backend, whether every link is captured and where captures go.
    pub(crate) fn start(
        plan: &Plan,
        seed: u64,
        middle: Arc<NsFds>,
        netlink: NodeNetlink,
        netlink_rt: &NetlinkRuntime,
        test: &str,
        settings: &Settings,
    ) -> Result<Backend> {
        let captured = |link: &PlannedLink| link.capture || settings.capture;
        let carried: Vec<(usize, &Middle)> =
            plan.links.iter().enumerate().filter_map(|(i, link)| Some((i, link.middle.as_ref()?))).collect();
        let indexes: Vec<usize> = carried.iter().map(|&(index, _)| index).collect();
        let choice = choose(settings.link_engine, Needs::of(plan, &indexes, captured), netem_available)?;
        eprintln!("netns-test: link conditions: {}; seed {seed}", choice.summary());
        let mut captures = Vec::new();
        let mut nats = Vec::with_capacity(plan.nats.len());
        for (k, nat) in plan.nats.iter().enumerate() {
            let config = NatConfig::of(&nat.nat, nat.outside, nat_seed(seed, k)).map_err(|e| {
                Error::from(crate::topology::TopologyError::from(
                    crate::topology::TopologyErrorKind::InvalidNat {
                        router: plan.nodes[nat.router].name.clone(),
                        reason: e.to_string(),
                    },
                ))
            })?;
            nats.push(Arc::new(std::sync::Mutex::new(Translator::new(config))));
        }
        let how = if choice.backend == Kind::Netem {
            for &(index, middle) in &carried {
                let link = &plan.links[index];
                let options = [
                    NetemOptions::from_conditions(&link.conditions[0], link_seed(seed, index))?,
                    NetemOptions::from_conditions(&link.conditions[1], link_seed(seed, index))?,
                ];
                let (handle, middle) = (netlink.handle.clone(), middle.clone());
                netlink_rt.block_on(async move {
                    let at = At { node: MIDDLE, handle: &handle };
                    let ([a, b], bridge) = (&middle.ends, &middle.bridge);
                    at.add_bridge(bridge.index, &bridge.name, bridge.mac).await?;
                    at.set_controller(a.index, &a.name, bridge.index).await?;
                    at.set_controller(b.index, &b.name, bridge.index).await?;
                    // The qdisc of the end facing b carries a→b, and the other way round.
                    apply_netem(&handle, MIDDLE, b.index, &b.name, &options[0]).await?;
                    apply_netem(&handle, MIDDLE, a.index, &a.name, &options[1]).await
                })?;
            }
            How::Netem
        } else {
            let engine = Engine::start()?;
            let mut ids = vec![None; plan.links.len()];
            for &(index, ends) in &carried {
                let link = &plan.links[index];
                let port = |end: &Device| Port {
                    netns: Arc::clone(&middle),
                    ifindex: end.index,
                    ifname: end.name.clone(),
                };
                let capture = captured(link)
                    .then(|| artifacts_dir(settings.artifacts.as_deref(), test).join(&ends.capture_file));
                if let Some(path) = &capture {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            Error::io(format!("creating the capture directory {}", dir.display()), e)
                        })?;
                    }
                    captures.push(path.clone());
                }
                ids[index] = Some(engine.attach(LinkSpec {
                    label: link.label.clone(),
                    a: port(&ends.ends[0]),
                    b: port(&ends.ends[1]),
                    conditions: link.conditions.clone(),
                    seed: link_seed(seed, index),
                    capture,
                    nat: plan.nats.iter().zip(&nats).find(|(nat, _)| nat.link == index).map(
                        |(nat, translator)| NatPort {
                            translator: Arc::clone(translator),
                            outbound: if nat.slot == 0 { Direction::AToB } else { Direction::BToA },
                        },
                    ),
                })?);
            }
            How::Engine { engine, ids }
        };
        Ok(Backend { middle, netlink, how, seed, captures, nats, runtime: Default::default() })
    }

    /// The seed the link conditions of this network run with.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// The capture files being written.
    pub(crate) fn captures(&self) -> &[PathBuf] {
        &self.captures
    }

    /// Changes the conditions of one direction of plan link `index`. They are validated here,
    /// before anything reaches the backend.
    ///
    /// # Errors
    /// [`Error::InvalidConditions`] (the same on every backend); what netem cannot do; a
    /// failure of the backend.
    pub(crate) fn set_conditions(
        &self,
        plan: &Plan,
        netlink_rt: &NetlinkRuntime,
        index: usize,
        direction: Direction,
        conditions: Conditions,
    ) -> Result<()> {
        let label = self.label(plan, index);
        if self.how.kind() == Kind::Netem && conditions.spares_neighbour_discovery() {
            eprintln!(
                "netns-test: {label}, {direction}: netem carries it, so loss, duplicate and corrupt hit ARP \
                 and neighbour discovery too"
            );
        }
        let change = prepare(self.how.kind(), &label, direction, conditions, link_seed(self.seed, index))?;
        match (&self.how, change) {
            (How::Engine { engine, ids }, Change::Engine(conditions)) => {
                engine.set_conditions(self.id(ids, index), direction, conditions)
            }
            (How::Netem, Change::Netem(options)) => {
                // Only the topology's links are carried by netem.
                let middle =
                    plan.links[index].middle.as_ref().expect("carried links cross the middle namespace");
                // The qdisc of the end facing b carries a→b, and the other way round.
                let end = match direction {
                    Direction::AToB => middle.ends[1].clone(),
                    Direction::BToA => middle.ends[0].clone(),
                };
                let handle = self.netlink.handle.clone();
                netlink_rt.block_on(async move {
                    apply_netem(&handle, MIDDLE, end.index, &end.name, &options).await
                })
            }
            _ => unreachable!("a change is prepared for the backend that carries the link"),
        }
    }

    /// The counters of plan link `index` (a→b, b→a), which only the user-space engine keeps.
    pub(crate) fn counters(&self, index: usize) -> Result<[DirectionCounters; 2]> {
        match &self.how {
            How::Engine { engine, ids } => Ok(engine.counters(self.id(ids, index))),
            How::Netem => Err(Error::Unsupported {
                feature: "link counters with netem".into(),
                reason: "only the user-space engine counts what it does to each frame; \
                         set NETNS_TEST_LINK_ENGINE=userspace"
                    .into(),
            }),
        }
    }

    /// Installs a per-packet hook on `direction` of plan link `index`, which only the
    /// user-space engine can run.
    ///
    /// # Errors
    /// [`Error::Unsupported`] with netem, or when the direction has a hook already; the
    /// engine not answering.
    pub(crate) fn install_hook(
        &self,
        index: usize,
        direction: Direction,
        hook: Hook,
        state: Arc<HookState>,
        timeline: Timeline,
    ) -> Result<()> {
        match &self.how {
            How::Engine { engine, ids } => {
                engine.install_hook(self.id(ids, index), direction, Installed::new(hook, state, timeline))
            }
            How::Netem => Err(Error::Unsupported {
                feature: "per-packet hooks with netem".into(),
                reason: "netem forwards in the kernel, where no Rust code sees the frames;                          set NETNS_TEST_LINK_ENGINE=userspace"
                    .into(),
            }),
        }
    }

    /// Removes the hook `state` from `direction` of plan link `index`, if it is still there.
    pub(crate) fn remove_hook(&self, index: usize, direction: Direction, state: &HookState) -> Result<()> {
        match &self.how {
            How::Engine { engine, ids } => engine.remove_hook(self.id(ids, index), direction, state),
            How::Netem => Ok(()),
        }
    }

    /// Every hook installed so far (none with netem).
    pub(crate) fn hooks(&self) -> Vec<Arc<HookState>> {
        match &self.how {
            How::Engine { engine, .. } => engine.hooks(),
            How::Netem => Vec::new(),
        }
    }

    /// Writes the captures out (before a failure is reported).
    pub(crate) fn flush(&self) {
        if let How::Engine { engine, .. } = &self.how {
            let _ = engine.flush();
        }
    }

    /// Removes the captures of a test that passed.
    pub(crate) fn discard_captures(&self) {
        for path in &self.captures {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = self.captures.first().and_then(|path| path.parent()) {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// The translator of NAT `index` of the plan.
    pub(crate) fn nat(&self, index: usize) -> &Arc<std::sync::Mutex<Translator>> {
        &self.nats[index]
    }

    /// The middle namespace, for keep-on-failure hints.
    pub(crate) fn middle(&self) -> &NsFds {
        &self.middle
    }

    /// The middle namespace's netlink connection, for links added at runtime.
    pub(crate) fn middle_netlink(&self) -> &NodeNetlink {
        &self.netlink
    }

    /// The engine's id of link `index` (a plan index, or the key of a link attached at
    /// runtime).
    fn id(&self, ids: &[Option<LinkId>], index: usize) -> LinkId {
        let runtime = || {
            self.runtime
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&index)
                .map(|(id, _)| *id)
        };
        ids.get(index).copied().flatten().or_else(runtime).expect("carried links are attached")
    }

    /// The label of link `index`, for messages.
    fn label(&self, plan: &Plan, index: usize) -> String {
        match plan.links.get(index) {
            Some(link) => link.label.clone(),
            None => {
                let runtime = self.runtime.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                runtime.get(&index).map_or_else(|| format!("link {}", index + 1), |(_, label)| label.clone())
            }
        }
    }

    /// Starts carrying a link added at runtime, key `key` (above the plan's indexes), between
    /// its middle ends `ends` (made and up), with `conditions` validated by planning and a
    /// seed derived from the network's as a topology link's is. Only the user-space engine
    /// takes links at runtime.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when netem carries the network's links; the engine failing to
    /// open the ports.
    pub(crate) fn attach_runtime(
        &self,
        key: usize,
        label: String,
        ends: &[Device; 2],
        conditions: [ValidConditions; 2],
    ) -> Result<()> {
        let How::Engine { engine, .. } = &self.how else {
            return Err(Error::Unsupported {
                feature: format!("conditions on {label}, added at runtime, with netem"),
                reason:
                    "only the user-space engine takes links at runtime; set NETNS_TEST_LINK_ENGINE=userspace"
                        .into(),
            });
        };
        let port = |end: &Device| Port {
            netns: Arc::clone(&self.middle),
            ifindex: end.index,
            ifname: end.name.clone(),
        };
        let id = engine.attach(LinkSpec {
            label: label.clone(),
            a: port(&ends[0]),
            b: port(&ends[1]),
            conditions,
            seed: link_seed(self.seed, key),
            capture: None,
            nat: None,
        })?;
        self.runtime.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, (id, label));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
