//! The encoder against golden bytes: the `TCA_OPTIONS` payloads that iproute2 6.1's `tc`
//! sent for the commands named in each test, captured with
//! `unshare -n sh -c 'ip link set lo up; strace -f -e trace=sendmsg -e write=3 -xx tc qdisc add dev lo root netem ...'`
//! (the kernel here has no netem and refuses, but strace shows the bytes first).

use std::time::Duration;

use super::*;
use crate::conditions::{Conditions, GilbertElliott, ValidConditions};

/// The netem options of `conditions`, validated first as every caller of the encoder does.
fn options(conditions: Conditions, seed: u64) -> Result<NetemOptions> {
    NetemOptions::from_conditions(&ValidConditions::new(conditions).expect("valid conditions"), seed)
}

/// The encoding of `conditions` without the seed attribute, which tc 6.1 cannot send.
fn encode(conditions: Conditions) -> Vec<u8> {
    let options = options(conditions, 0).expect("netem can do it");
    NetemOptions { seed: None, ..options }.encode()
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[test]
fn delay_jitter_loss() {
    // tc qdisc add dev lo root netem delay 10ms 2ms loss 1%
    const GOLDEN: [u8; 24] = [
        0x5a, 0x62, 0x02, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x29, 0x5c, 0x8f, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x12, 0x7a, 0x00, 0x00,
    ];
    assert_eq!(encode(Conditions::new().delay(ms(10)).jitter(ms(2)).loss(0.01)), GOLDEN);
}

#[test]
fn everything_with_correlation_reorder_and_corrupt() {
    // tc qdisc add dev lo root netem delay 100ms 10ms 25% loss 0.5% duplicate 1% corrupt 0.1% reorder 25% limit 2000
    const GOLDEN: [u8; 64] = [
        0x84, 0xd7, 0x17, 0x00, 0xd0, 0x07, 0x00, 0x00, 0x14, 0xae, 0x47, 0x01, 0x01, 0x00, 0x00, 0x00, 0x29,
        0x5c, 0x8f, 0x02, 0x5a, 0x62, 0x02, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
        0x00, 0x0c, 0x00, 0x04, 0x00, 0x37, 0x89, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let conditions = Conditions::new()
        .delay(ms(100))
        .jitter(ms(10))
        .jitter_correlation(0.25)
        .loss(0.5 / 100.0)
        .duplicate(0.01)
        .corrupt(0.1 / 100.0)
        .reorder(0.25)
        .limit(2000);
    assert_eq!(encode(conditions), GOLDEN);
}

#[test]
fn reorder_sets_a_gap_of_one() {
    // tc qdisc add dev lo root netem delay 10ms reorder 25%
    const GOLDEN: [u8; 36] = [
        0x5a, 0x62, 0x02, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00,
        0x00, 0x00,
    ];
    assert_eq!(encode(Conditions::new().delay(ms(10)).reorder(0.25)), GOLDEN);
}

#[test]
fn times_are_truncated_to_64_ns_ticks() {
    // tc qdisc add dev lo root netem delay 1.5ms 250us
    const GOLDEN: [u8; 24] = [
        0x8d, 0x5b, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x42, 0x0f, 0x00, 0x00,
    ];
    assert_eq!(
        encode(Conditions::new().delay(Duration::from_micros(1500)).jitter(Duration::from_micros(250))),
        GOLDEN
    );
}

#[test]
fn rate() {
    // tc qdisc add dev lo root netem delay 5ms rate 10mbit
    const GOLDEN: [u8; 44] = [
        0x2d, 0x31, 0x01, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x06, 0x00, 0xd0, 0x12, 0x13, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(encode(Conditions::new().delay(ms(5)).rate(10_000_000)), GOLDEN);
    // tc qdisc add dev lo root netem delay 20ms rate 1500kbit limit 50
    const LIMITED: [u8; 44] = [
        0xb4, 0xc4, 0x04, 0x00, 0x32, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x06, 0x00, 0x6c, 0xdc, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(encode(Conditions::new().delay(ms(20)).rate(1_500_000).limit(50)), LIMITED);
}

#[test]
fn rates_from_4_gbytes_per_second_use_rate64() {
    // tc qdisc add dev lo root netem rate 100gbit
    const GOLDEN: [u8; 56] = [
        0x00, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x08, 0x00, 0x00, 0xdd, 0x0e, 0xe9, 0x02, 0x00,
        0x00, 0x00, 0x14, 0x00, 0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    assert_eq!(encode(Conditions::new().rate(100_000_000_000)), GOLDEN);
}

#[test]
fn gilbert_elliott_loss() {
    // tc qdisc add dev lo root netem loss gemodel 1% 30% 70% 0.1%
    const GOLDEN: [u8; 48] = [
        0x00, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x05, 0x80, 0x14, 0x00, 0x02, 0x00, 0x29, 0x5c,
        0x8f, 0x02, 0xcc, 0xcc, 0xcc, 0x4c, 0xcd, 0xcc, 0xcc, 0x4c, 0x37, 0x89, 0x41, 0x00,
    ];
    let model = GilbertElliott { p: 0.01, r: 0.3, loss_bad: 0.7, loss_good: 0.1 / 100.0 };
    assert_eq!(encode(Conditions::new().loss_model(Loss::GilbertElliott(model))), GOLDEN);
}

#[test]
fn normal_jitter_carries_the_distribution_table() {
    // tc qdisc add dev lo root netem delay 10ms 2ms distribution normal: the qopt, then a
    // TCA_NETEM_DELAY_DIST of 8196 bytes (header and 4096 values).
    const HEAD: [u8; 28] = [
        0x5a, 0x62, 0x02, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x12, 0x7a, 0x00, 0x00, 0x04, 0x20, 0x02, 0x00,
    ];
    // Entries of the table tc sent (iproute2's normal.dist), by index.
    const SAMPLES: [(usize, i16); 20] = [
        (0, -32768),
        (1, -28307),
        (2, -26871),
        (3, -25967),
        (4, -25298),
        (5, -24765),
        (6, -24320),
        (7, -23937),
        (2040, -40),
        (2042, -29),
        (2044, -20),
        (2046, -9),
        (2048, 0),
        (2050, 11),
        (2052, 20),
        (2054, 30),
        (4092, 25450),
        (4093, 26164),
        (4094, 27159),
        (4095, 28858),
    ];
    let bytes = encode(Conditions::new().delay(ms(10)).jitter(ms(2)).distribution(Distribution::Normal));
    assert_eq!(bytes.len(), 8220);
    assert_eq!(bytes[..28], HEAD);
    let table: Vec<i16> = bytes[28..].chunks(2).map(|pair| i16::from_ne_bytes([pair[0], pair[1]])).collect();
    for (index, value) in SAMPLES {
        assert!((table[index] - value).abs() <= 1, "entry {index}: {} against tc's {value}", table[index]);
    }
    assert!(table.windows(2).all(|w| w[0] <= w[1]), "the table rises");
}

#[test]
fn times_beyond_32_bit_ticks_go_in_64_bit_attributes() {
    let options =
        options(Conditions::new().delay(Duration::from_secs(300)).jitter(Duration::from_secs(280)), 0)
            .unwrap();
    let bytes = NetemOptions { seed: None, ..options }.encode();
    let mut expected = vec![0xff, 0xff, 0xff, 0xff, 0xe8, 0x03, 0, 0];
    expected.extend_from_slice(&[0; 12]);
    expected.extend_from_slice(&[0xff; 4]);
    expected.extend_from_slice(&[12, 0, 10, 0]);
    expected.extend_from_slice(&300_000_000_000i64.to_ne_bytes());
    expected.extend_from_slice(&[12, 0, 11, 0]);
    expected.extend_from_slice(&280_000_000_000i64.to_ne_bytes());
    assert_eq!(bytes, expected);
}

#[test]
fn the_seed_is_the_last_attribute() {
    let bytes = options(Conditions::new().delay(ms(10)), 0x0102_0304_0506_0708).unwrap().encode();
    assert_eq!(bytes.len(), 24 + 12);
    assert_eq!(bytes[24..28], [12, 0, 14, 0]);
    assert_eq!(bytes[28..], 0x0102_0304_0506_0708u64.to_ne_bytes());
    // A seed of the conditions wins over the link's.
    let own = options(Conditions::new().seed(5), 9).unwrap();
    assert_eq!(own.seed, Some(5));
}

#[test]
fn probabilities_round_like_iproute2() {
    assert_eq!(probability(0.3), 0x4ccc_cccc);
    assert_eq!(u32::MAX - probability(0.7), 0x4ccc_cccd);
    assert_eq!(probability(0.5), 0x8000_0000);
    assert_eq!(probability(1.0), u32::MAX);
    assert_eq!(probability(0.0), 0);
}

#[test]
fn a_byte_limit_is_refused_not_dropped() {
    let error = options(Conditions::new().limit_bytes(10_000), 0).unwrap_err();
    assert!(
        matches!(&error, Error::Unsupported { feature, .. } if feature == "limit_bytes on netem"),
        "{error:?}"
    );
}

#[test]
fn a_buffer_is_refused_not_dropped() {
    let error = options(Conditions::mobile_3g(), 0).unwrap_err();
    assert!(
        matches!(&error, Error::Unsupported { feature, .. } if feature == "buffer on netem"),
        "{error:?}"
    );
    assert!(error.to_string().contains("300ms"), "{error}");
}

#[test]
fn the_options_travel_as_raw_bytes_not_as_a_nested_attribute() {
    let options = options(Conditions::new().delay(ms(10)), 1).unwrap();
    let attributes = options.tc_attributes();
    assert_eq!(attributes[0], TcAttribute::Kind("netem".into()));
    match &attributes[1] {
        TcAttribute::Other(nla) => {
            use rtnetlink::packet_core::Nla;
            assert_eq!(nla.kind(), TCA_OPTIONS);
            let mut value = vec![0u8; nla.value_len()];
            nla.emit_value(&mut value);
            assert_eq!(value, options.encode(), "the qopt starts the attribute's payload");
        }
        other => panic!("{other:?}"),
    }
}
