use netns_test::{Topology, netns_test};

fn mine() -> Topology {
    Topology::pair()
}

#[netns_test(topology = mine, topology_file = "topo.toml")]
fn both() {}

fn main() {}
