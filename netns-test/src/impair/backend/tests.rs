use super::*;

#[test]
fn link_seeds_differ_and_repeat() {
    assert_eq!(link_seed(7, 0), link_seed(7, 0));
    assert_ne!(link_seed(7, 0), link_seed(7, 1));
    assert_ne!(link_seed(7, 0), link_seed(8, 0));
}

#[test]
fn invalid_conditions_are_the_same_error_on_either_backend() {
    let label = "link 1 (`client` – `server`)";
    let refused = |backend| {
        let error = prepare(backend, label, Direction::AToB, Conditions::new().loss(5.0), 1).unwrap_err();
        assert!(
            matches!(&error, Error::InvalidConditions { source, .. } if source.field == "loss"),
            "{error:?}"
        );
        error.to_string()
    };
    // netem's encoding would have clamped 5 to a probability of 1: 100 % loss.
    assert_eq!(refused(Kind::Netem), refused(Kind::Engine));
    assert_eq!(
        refused(Kind::Netem),
        "link 1 (`client` – `server`), a→b: invalid condition loss = 5: must be a probability \
         from 0 to 1 (0.05 is 5 %)"
    );

    let fine = Conditions::new().loss(0.5);
    assert_eq!(
        prepare(Kind::Engine, label, Direction::BToA, fine.clone(), 1).unwrap(),
        Change::Engine(ValidConditions::new(fine.clone()).unwrap())
    );
    let Change::Netem(options) = prepare(Kind::Netem, label, Direction::BToA, fine, 1).unwrap() else {
        panic!("netem options for netem");
    };
    assert_eq!(options.loss, u32::MAX / 2 + 1);
}

#[test]
fn the_choice_of_backend_and_its_one_line() {
    let missing =
        || Err(Error::Unsupported { feature: "sch_netem".into(), reason: "a long remedy: modprobe".into() });
    let present = || Ok(());
    let plain = Needs::default();
    let capture = Needs { capture: true, ..Needs::default() };
    let spare = Needs { spare_neighbours: true, ..Needs::default() };
    let auto = choose(LinkEngine::Auto, plain, missing).unwrap();
    assert_eq!(auto.backend, Kind::Engine);
    assert_eq!(auto.summary(), "user-space engine; netem unavailable, see `cargo xtask doctor`");
    assert_eq!(choose(LinkEngine::Auto, plain, present).unwrap().summary(), "netem");
    assert_eq!(
        choose(LinkEngine::Auto, capture, present).unwrap().summary(),
        "user-space engine (captures need it)"
    );
    // Only the engine has a buffer sized in time.
    let buffer = Needs { buffer: true, ..Needs::default() };
    assert_eq!(
        choose(LinkEngine::Auto, buffer, present).unwrap().summary(),
        "user-space engine (netem has no buffer sized in time)"
    );
    // Only the engine spares neighbour discovery, so auto prefers it even with netem there.
    assert_eq!(
        choose(LinkEngine::Auto, spare, present).unwrap().summary(),
        "user-space engine (netem cannot spare ARP and neighbour discovery)"
    );
    let asked = choose(LinkEngine::Netem, spare, present).unwrap();
    assert_eq!(asked.backend, Kind::Netem);
    assert_eq!(
        asked.summary(),
        "netem (NETNS_TEST_LINK_ENGINE=netem); loss, duplicate and corrupt hit ARP and neighbour \
         discovery too"
    );
    assert_eq!(
        choose(LinkEngine::Userspace, plain, present).unwrap().summary(),
        "user-space engine (NETNS_TEST_LINK_ENGINE=userspace)"
    );
    let unprobed = || Err(Error::io("probing", std::io::ErrorKind::Other.into()));
    assert!(choose(LinkEngine::Auto, plain, unprobed).unwrap().summary().contains("could not be probed"));
    // Asked for explicitly, a missing netem is an error with the whole remedy.
    let error = choose(LinkEngine::Netem, plain, missing).unwrap_err();
    assert!(error.to_string().contains("modprobe"), "{error}");
    assert!(choose(LinkEngine::Netem, capture, present).is_err(), "netem cannot capture");
}

#[test]
fn artifacts_go_under_the_test_name() {
    let dir = artifacts_dir(None, "conditions::ten_ms");
    assert!(dir.ends_with("netns-test/conditions__ten_ms"), "{}", dir.display());
    let dir = artifacts_dir(Some(Path::new("/tmp/out")), "conditions::ten_ms");
    assert_eq!(dir, Path::new("/tmp/out/conditions__ten_ms"));
}

#[test]
fn a_nat_takes_the_engine_and_netem_refuses_it() {
    let nat = Needs { nat: true, ..Needs::default() };
    let present = || Ok(());
    assert_eq!(
        choose(LinkEngine::Auto, nat, present).unwrap().summary(),
        "user-space engine (a NAT translates in it)"
    );
    let error = choose(LinkEngine::Netem, nat, present).unwrap_err();
    assert!(error.to_string().starts_with("NAT with netem is not available"), "{error}");
    assert_ne!(nat_seed(7, 0), nat_seed(7, 1));
    assert_ne!(nat_seed(7, 0), link_seed(7, 0), "a NAT's stream is no link's");
    assert_eq!(nat_seed(7, 0), nat_seed(7, 0));
}
