use super::*;
use crate::conditions::Conditions;
use crate::topology::RouteSpec;

fn topology() -> Topology {
    Topology::builder()
        .host("client")
        .router("r1")
        .switch("sw")
        .host("h1")
        .link(Link::new("client", "r1").addrs("10.0.1.2/24", "10.0.1.1/24").conditions(Conditions::new()))
        .link(Link::new("r1", "sw").addr("r1", "10.0.2.1/24"))
        .link(Link::new("h1", "sw").addr("h1", "10.0.2.2/24"))
        .route("client", "default", "10.0.1.1")
        .auto_routes()
        .build()
        .unwrap()
}

#[test]
fn the_model_with_its_names_written_out_plans_to_the_topologys_plan() {
    let topology = topology();
    let paths = Paths::new(&topology);
    let state = paths.state();
    let names: Vec<Vec<Option<&str>>> = state
        .model
        .links
        .iter()
        .map(|link| link.ends.iter().map(|end| end.ifname.as_deref()).collect())
        .collect();
    assert_eq!(
        names,
        [[Some("eth0"), Some("eth0")], [Some("eth1"), Some("eth0")], [Some("eth0"), Some("eth1")]]
    );
    assert_eq!(plan_model(&state.model).unwrap(), **topology.plan());
    assert_eq!(state.keys, [0, 1, 2]);
    assert_eq!(state.carried, HashSet::from([0]));
}

#[test]
fn runtime_interfaces_are_numbered_above_every_device_of_the_network() {
    let topology = topology();
    let plan = topology.plan();
    let middle = plan.links[0].middle.as_ref().unwrap();
    let highest = [middle.ends[0].index, middle.ends[1].index, middle.bridge.index]
        .into_iter()
        .chain(plan.nodes.iter().flat_map(|node| node.ifaces.iter().map(|iface| iface.index)))
        .chain(plan.nodes.iter().filter_map(|node| node.bridge.as_ref().map(|bridge| bridge.index)))
        .max()
        .unwrap();
    assert_eq!(Paths::new(&topology).state().next_index, highest + 1);
}

#[test]
fn static_routes_whose_gateway_left_with_a_link_are_dropped() {
    let mut model = Paths::new(&topology()).state().model.clone();
    model.routes.push(RouteSpec {
        node: "h1".into(),
        to: "default".into(),
        via: "10.0.2.1".into(),
        location: None,
    });
    model.routes.push(RouteSpec {
        node: "h1".into(),
        to: "default".into(),
        via: "garbage".into(),
        location: None,
    });
    drop_stranded_routes(&mut model);
    assert_eq!(model.routes.len(), 3, "every gateway is still reachable, and planning reports the bad one");
    model.links.remove(0);
    drop_stranded_routes(&mut model);
    let left: Vec<(&str, &str)> = model.routes.iter().map(|r| (r.node.as_str(), r.via.as_str())).collect();
    assert_eq!(left, [("h1", "10.0.2.1"), ("h1", "garbage")]);
}
