use std::time::Duration;

use super::*;
use crate::conditions::GilbertElliott;

const MS: u64 = 1_000_000;

fn offer(now: u64, len: usize) -> Offer {
    Offer { now, len, segments: 1, neighbour: false }
}

fn everything() -> Conditions {
    Conditions::new()
        .delay(Duration::from_millis(10))
        .jitter(Duration::from_millis(3))
        .loss(0.1)
        .duplicate(0.05)
        .corrupt(0.05)
        .reorder(0.1)
}

/// The decisions for `count` packets of 100 bytes, one every millisecond.
fn run(conditions: Conditions, seed: u64, count: u64) -> Vec<Decision> {
    let mut decider = Decider::new(conditions, seed, Direction::AToB);
    (0..count).map(|i| decider.decide(offer(i * MS, 100))).collect()
}

fn lost(decisions: &[Decision]) -> Vec<bool> {
    decisions.iter().map(|d| d.original == Fate::Lost).collect()
}

#[test]
fn same_seed_same_decisions_other_seed_other_decisions() {
    let first = run(everything(), 42, 5000);
    assert_eq!(first, run(everything(), 42, 5000));
    assert_ne!(first, run(everything(), 43, 5000));
    // The two directions of one link draw from different streams.
    let mut other = Decider::new(everything(), 42, Direction::BToA);
    let reverse: Vec<Decision> = (0..5000).map(|i| other.decide(offer(i * MS, 100))).collect();
    assert_ne!(first, reverse);
    // A seed in the conditions wins over the link's.
    assert_eq!(run(everything().seed(7), 1, 500), run(everything().seed(7), 2, 500));
}

#[test]
fn one_impairment_does_not_disturb_another() {
    let plain = lost(&run(Conditions::new().loss(0.2), 5, 3000));
    let busy = lost(&run(everything().loss(0.2), 5, 3000));
    assert_eq!(plain, busy);
}

#[test]
fn random_loss_matches_its_probability() {
    let decisions = run(Conditions::new().loss(0.1), 1, 100_000);
    let lost = decisions.iter().filter(|d| d.original == Fate::Lost).count();
    // 99.99 % binomial bound: 10000 ± 3.9 σ, σ = 94.9.
    assert!((9630..=10370).contains(&lost), "{lost} of 100000 lost");
    assert!(run(Conditions::new(), 1, 1000).iter().all(|d| d.original != Fate::Lost));
    assert!(run(Conditions::new().loss(1.0), 1, 1000).iter().all(|d| d.original == Fate::Lost));
}

#[test]
fn gilbert_elliott_loses_in_bursts() {
    let ge = GilbertElliott::new(0.01, 0.2);
    let decisions = lost(&run(Conditions::new().loss_model(Loss::GilbertElliott(ge)), 3, 200_000));
    let rate = decisions.iter().filter(|l| **l).count() as f64 / decisions.len() as f64;
    assert!((rate - ge.mean_loss()).abs() < 0.006, "loss {rate}, expected {}", ge.mean_loss());
    // Mean burst length is 1/r = 5 packets; random loss at the same rate gives ~1.05.
    let bursts = decisions.windows(2).filter(|w| w[1] && !w[0]).count();
    let mean_burst = decisions.iter().filter(|l| **l).count() as f64 / bursts as f64;
    assert!((4.0..6.0).contains(&mean_burst), "mean burst {mean_burst}");
}

#[test]
fn delay_is_constant_without_jitter() {
    for (i, d) in run(Conditions::new().delay(Duration::from_millis(10)), 1, 100).iter().enumerate() {
        let depart = i as u64 * MS + 10 * MS;
        assert_eq!(d.original, Fate::Send { depart, corrupt_bit: None, reordered: false });
        assert_eq!(d.duplicate, None);
    }
}

fn delays(conditions: Conditions, count: u64) -> Vec<f64> {
    run(conditions, 11, count)
        .iter()
        .enumerate()
        .map(|(i, d)| match d.original {
            Fate::Send { depart, .. } => (depart - i as u64 * MS) as f64 / MS as f64,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (mean, var.sqrt())
}

#[test]
fn uniform_jitter_stays_in_its_band() {
    let values =
        delays(Conditions::new().delay(Duration::from_millis(10)).jitter(Duration::from_millis(2)), 20_000);
    assert!(values.iter().all(|d| (8.0..=12.0).contains(d)));
    let (mean, sd) = mean_sd(&values);
    assert!((mean - 10.0).abs() < 0.05, "{mean}");
    // Uniform on ±2: sd = 2/√3.
    assert!((sd - 2.0 / 3f64.sqrt()).abs() < 0.03, "{sd}");
}

#[test]
fn normal_jitter_has_the_jitter_as_standard_deviation() {
    let values = delays(
        Conditions::new()
            .delay(Duration::from_millis(50))
            .jitter(Duration::from_millis(5))
            .distribution(Distribution::Normal),
        20_000,
    );
    let (mean, sd) = mean_sd(&values);
    assert!((mean - 50.0).abs() < 0.15, "{mean}");
    assert!((sd - 5.0).abs() < 0.15, "{sd}");
}

#[test]
fn jitter_never_sends_before_arrival() {
    let values =
        delays(Conditions::new().delay(Duration::from_millis(1)).jitter(Duration::from_millis(5)), 5000);
    assert!(values.iter().all(|d| *d >= 0.0));
    assert!(values.contains(&0.0));
}

#[test]
fn correlated_jitter_moves_slowly() {
    let steps = |rho: f64| {
        let values = delays(
            Conditions::new()
                .delay(Duration::from_millis(10))
                .jitter(Duration::from_millis(2))
                .jitter_correlation(rho),
            5000,
        );
        values.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / values.len() as f64
    };
    assert!(steps(0.9) < steps(0.0) / 4.0);
}

#[test]
fn rate_spaces_packets_by_their_transmission_time() {
    // 10 Mbit/s: 1250 bytes take exactly 1 ms. All sent at time 0, limit 3.
    let mut decider = Decider::new(Conditions::new().rate(10_000_000).limit(3), 1, Direction::AToB);
    let fates: Vec<Fate> = (0..5).map(|_| decider.decide(offer(0, 1250)).original).collect();
    let send = |depart| Fate::Send { depart, corrupt_bit: None, reordered: false };
    assert_eq!(fates, [send(MS), send(2 * MS), send(3 * MS), Fate::QueueFull, Fate::QueueFull]);
    // Once the first has gone, there is room for one more, queued behind the rest.
    assert_eq!(decider.decide(offer(MS, 1250)).original, send(4 * MS));
    // An idle link sends at once; delay comes on top of the transmission time.
    decider
        .set_conditions(Conditions::new().rate(10_000_000).delay(Duration::from_millis(5)), Direction::AToB);
    assert_eq!(decider.decide(offer(100 * MS, 1250)).original, send(106 * MS));
}

#[test]
fn byte_limit_bounds_the_queue() {
    let mut decider = Decider::new(Conditions::new().rate(8_000).limit_bytes(2500), 1, Direction::AToB);
    let fates: Vec<bool> =
        (0..4).map(|_| decider.decide(offer(0, 1000)).original != Fate::QueueFull).collect();
    assert_eq!(fates, [true, true, false, false]);
}

#[test]
fn a_buffer_bounds_the_queue_in_time() {
    // 1000 bytes take 1 s at 8 kbit/s: with a 2.5 s buffer, the queue holds what leaves
    // within 2.5 s (the packet sent at once and two waiting), the packet limit allowing more.
    let conditions = Conditions::new().rate(8_000).buffer(Duration::from_millis(2500));
    let mut decider = Decider::new(conditions, 1, Direction::AToB);
    let fates: Vec<bool> =
        (0..5).map(|_| decider.decide(offer(0, 1000)).original != Fate::QueueFull).collect();
    assert_eq!(fates, [true, true, true, false, false]);
    // Once the first has left, the queue takes one more.
    assert_ne!(decider.decide(offer(1000 * MS, 1000)).original, Fate::QueueFull);
    assert_eq!(decider.decide(offer(1000 * MS, 1000)).original, Fate::QueueFull);
}

#[test]
fn a_superframe_counts_as_its_segments() {
    let mut decider = Decider::new(Conditions::new().rate(10_000_000).limit(10), 1, Direction::AToB);
    assert!(!decider.per_packet());
    let first = decider.decide(Offer { now: 0, len: 12_500, segments: 8, neighbour: false });
    assert_eq!(first.original, Fate::Send { depart: 10 * MS, corrupt_bit: None, reordered: false });
    assert_eq!(
        decider.decide(Offer { now: 0, len: 12_500, segments: 8, neighbour: false }).original,
        Fate::QueueFull
    );
    assert!(Decider::new(Conditions::new().loss(0.1), 1, Direction::AToB).per_packet());
    assert!(
        Decider::new(Conditions::new().jitter(Duration::from_millis(1)), 1, Direction::AToB).per_packet()
    );
}

#[test]
fn reordered_packets_skip_the_delay() {
    let decisions = run(Conditions::new().delay(Duration::from_millis(10)).reorder(0.25), 8, 10_000);
    let mut reordered = 0;
    for (i, d) in decisions.iter().enumerate() {
        let now = i as u64 * MS;
        match d.original {
            Fate::Send { depart, reordered: true, .. } => {
                assert_eq!(depart, now);
                reordered += 1;
            }
            Fate::Send { depart, reordered: false, .. } => assert_eq!(depart, now + 10 * MS),
            other => panic!("{other:?}"),
        }
    }
    assert!((2300..=2700).contains(&reordered), "{reordered}");
}

#[test]
fn duplicates_and_corruption() {
    let decisions = run(Conditions::new().duplicate(0.2).corrupt(0.3), 4, 10_000);
    let duplicated = decisions.iter().filter(|d| d.duplicate.is_some()).count();
    assert!((1800..=2200).contains(&duplicated), "{duplicated}");
    let mut corrupted = 0;
    for fate in decisions.iter().flat_map(|d| std::iter::once(d.original).chain(d.duplicate)) {
        if let Fate::Send { corrupt_bit: Some(bit), .. } = fate {
            assert!(bit < 800);
            corrupted += 1;
        }
    }
    let copies = 10_000 + duplicated;
    let share = corrupted as f64 / copies as f64;
    assert!((0.28..0.32).contains(&share), "{share}");
}

#[test]
fn runtime_change_takes_effect_at_the_next_packet() {
    let mut decider = Decider::new(Conditions::new().delay(Duration::from_millis(10)), 1, Direction::AToB);
    let depart = |d: Decision| match d.original {
        Fate::Send { depart, .. } => depart,
        other => panic!("{other:?}"),
    };
    assert_eq!(depart(decider.decide(offer(0, 100))), 10 * MS);
    decider.set_conditions(Conditions::new().delay(Duration::from_millis(50)), Direction::AToB);
    assert_eq!(depart(decider.decide(offer(MS, 100))), 51 * MS);
    assert_eq!(decider.conditions().delay, Duration::from_millis(50));
}

#[test]
fn inverse_normal_cdf_is_accurate() {
    for (p, x) in
        [(0.5, 0.0), (0.841_344_746_068_543, 1.0), (0.022_750_131_948_179, -2.0), (0.998_650_101_968_37, 3.0)]
    {
        assert!((inverse_normal_cdf(p) - x).abs() < 1e-7, "Φ⁻¹({p}) = {}", inverse_normal_cdf(p));
    }
    assert!(inverse_normal_cdf(0.0).is_finite());
    assert!(inverse_normal_cdf(1.0).is_finite());
}

fn neighbour(now: u64) -> Offer {
    Offer { now, len: 42, segments: 1, neighbour: true }
}

#[test]
fn neighbour_discovery_is_spared_unless_asked_for() {
    let ruinous = Conditions::new().loss(1.0).duplicate(1.0).corrupt(1.0).delay(Duration::from_millis(3));
    let mut decider = Decider::new(ruinous.clone(), 1, Direction::AToB);
    for i in 0..100 {
        let decision = decider.decide(neighbour(i * MS));
        let sent = Fate::Send { depart: i * MS + 3 * MS, corrupt_bit: None, reordered: false };
        // Never lost, copied or corrupted; delayed like any frame.
        assert_eq!(decision, Decision { original: sent, duplicate: None, spared: true });
        assert_eq!(decider.decide(offer(i * MS, 100)).original, Fate::Lost);
    }
    let mut impaired = Decider::new(ruinous.impair_neighbour_discovery(true), 1, Direction::AToB);
    assert_eq!(
        impaired.decide(neighbour(0)),
        Decision { original: Fate::Lost, duplicate: None, spared: false }
    );
}

#[test]
fn spared_frames_shift_no_other_decision() {
    let conditions = everything().jitter_correlation(0.3);
    let alone = run(conditions.clone(), 11, 3000);
    // The same packets at the same times, with neighbour discovery in between at irregular
    // moments: the other packets' fates do not change.
    let mut decider = Decider::new(conditions.clone(), 11, Direction::AToB);
    let mut mixed = Vec::new();
    for i in 0..3000 {
        if i % 7 == 0 || i % 11 == 3 {
            assert!(decider.decide(neighbour(i * MS)).spared);
        }
        mixed.push(decider.decide(offer(i * MS, 100)));
    }
    assert_eq!(alone, mixed);
    // Impaired, they draw like any packet, and the other packets' fates move.
    let mut decider = Decider::new(conditions.impair_neighbour_discovery(true), 11, Direction::AToB);
    let mut drawn = Vec::new();
    for i in 0..3000 {
        if i % 7 == 0 {
            decider.decide(neighbour(i * MS));
        }
        drawn.push(decider.decide(offer(i * MS, 100)));
    }
    assert_ne!(alone, drawn);
}

#[test]
fn spared_frames_still_get_jitter_and_reordering() {
    let conditions =
        Conditions::new().delay(Duration::from_millis(10)).jitter(Duration::from_millis(5)).reorder(0.5);
    let mut decider = Decider::new(conditions, 2, Direction::AToB);
    let departures: Vec<Fate> = (0..200).map(|i| decider.decide(neighbour(i * MS)).original).collect();
    let reordered = departures.iter().filter(|f| matches!(f, Fate::Send { reordered: true, .. })).count();
    assert!((60..=140).contains(&reordered), "{reordered} of 200 reordered");
    let delays: std::collections::BTreeSet<u64> = departures
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Fate::Send { depart, reordered: false, .. } => Some(depart - i as u64 * MS),
            _ => None,
        })
        .collect();
    assert!(delays.len() > 20 && delays.iter().all(|d| (5 * MS..=15 * MS).contains(d)), "{delays:?}");
}
