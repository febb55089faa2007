//! Named presets: the rungs of a degradation ladder, from a LAN to a barely usable link.
//!
//! Each preset is a [`Conditions`] for one direction (a link given one carries it both
//! ways): a rate, a one-way delay with jitter, bursty loss (Gilbert–Elliott, whose long-run
//! loss is [`GilbertElliott::mean_loss`]) and a buffer sized in time. The rates and delays
//! are round values from the sources each preset cites; where a preset's documentation says
//! so, its loss and buffer are its own choice. They are a starting point for tests, not a
//! model of any one network. The table:
//!
//! | preset | rate | delay (one way) | jitter | loss (mean, bursty) | buffer |
//! |---|---|---|---|---|---|
//! | `lan` | 1 Gbit/s | 0.25 ms | none | none | 5 ms |
//! | `wifi` | 50 Mbit/s | 3 ms | 1 ms | 0.1 % | 50 ms |
//! | `wifi_congested` | 5 Mbit/s | 15 ms | 5 ms | 1 % | 200 ms |
//! | `mobile_4g` | 12 Mbit/s | 35 ms | 5 ms | 0.5 % | 100 ms |
//! | `mobile_3g` | 1.6 Mbit/s | 75 ms | 10 ms | 1 % | 300 ms |
//! | `satellite_leo` | 50 Mbit/s | 20 ms | 5 ms | 0.5 % | 60 ms |
//! | `satellite_geo` | 10 Mbit/s | 300 ms | 5 ms | 0.5 % | 300 ms |
//! | `lossy` | 1 Mbit/s | 100 ms | 20 ms | 10 % | 500 ms |

use std::time::Duration;

use super::{ConditionError, Conditions, GilbertElliott, Loss};

/// The names of the presets, as [`Conditions::preset`] and topology files take them.
pub const PRESETS: [&str; 8] =
    ["lan", "wifi", "wifi_congested", "mobile_4g", "mobile_3g", "satellite_leo", "satellite_geo", "lossy"];

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Bursty loss: bursts of `1 / r` packets on average (every packet of a burst lost), with a
/// long-run loss of `mean`, so that `p = mean · r / (1 − mean)`.
fn bursts(mean: f64, r: f64) -> Loss {
    Loss::GilbertElliott(GilbertElliott::new(mean * r / (1.0 - mean), r))
}

impl Conditions {
    /// The preset called `name` (one of [`PRESETS`]).
    ///
    /// ```
    /// use netns_test::Conditions;
    /// assert_eq!(Conditions::preset("mobile_3g").unwrap(), Conditions::mobile_3g());
    /// assert!(Conditions::preset("5g").unwrap_err().reason.contains("mobile_4g"));
    /// ```
    ///
    /// # Errors
    /// A [`ConditionError`] for `preset` that lists the known names.
    pub fn preset(name: &str) -> Result<Conditions, ConditionError> {
        Ok(match name {
            "lan" => Self::lan(),
            "wifi" => Self::wifi(),
            "wifi_congested" => Self::wifi_congested(),
            "mobile_4g" => Self::mobile_4g(),
            "mobile_3g" => Self::mobile_3g(),
            "satellite_leo" => Self::satellite_leo(),
            "satellite_geo" => Self::satellite_geo(),
            "lossy" => Self::lossy(),
            _ => {
                return Err(ConditionError::new(
                    "preset",
                    format!("\"{name}\""),
                    format!("is not a preset; the presets are {}", PRESETS.join(", ")),
                ));
            }
        })
    }

    /// A wired LAN: 1 Gbit/s (Gigabit Ethernet over twisted pair, 1000BASE-T, IEEE 802.3ab),
    /// 0.25 ms one way, no jitter, no loss, a 5 ms buffer (the delay and the buffer are this
    /// preset's choice).
    pub fn lan() -> Conditions {
        Conditions::new().rate(1_000_000_000).delay(Duration::from_micros(250)).buffer(ms(5))
    }

    /// Good Wi-Fi (the top rung of the ladder that iroh tests along): 50 Mbit/s, 3 ms one way
    /// with 1 ms of jitter, 0.1 % loss in bursts of 2 packets on average, a 50 ms buffer. The
    /// delay is the low end of Wi-Fi hop latency measured over 47,000 devices of a campus
    /// network, "as low as 3 ms" (Sui et al., "Characterizing and Improving WiFi Latency in
    /// Large-Scale Operational Networks", MobiSys 2016); the rate, the jitter, the loss and
    /// the buffer are this preset's choice.
    pub fn wifi() -> Conditions {
        Conditions::new()
            .rate(50_000_000)
            .delay(ms(3))
            .jitter(ms(1))
            .loss_model(bursts(0.001, 0.5))
            .buffer(ms(50))
    }

    /// Congested Wi-Fi (a crowded channel): 5 Mbit/s, 15 ms one way with 5 ms of jitter, 1 %
    /// loss in bursts of 2 packets on average, and a 200 ms buffer, the bloated queue of a
    /// busy access point. The same study measured the Wi-Fi hop's 90th percentile at about
    /// 20 ms and its 99th at about 250 ms (Sui et al., MobiSys 2016): this preset sits between
    /// its median and its 90th percentile; the rate, the loss and the buffer are its own choice.
    pub fn wifi_congested() -> Conditions {
        Conditions::new()
            .rate(5_000_000)
            .delay(ms(15))
            .jitter(ms(5))
            .loss_model(bursts(0.01, 0.5))
            .buffer(ms(200))
    }

    /// 4G (LTE): 12 Mbit/s and a 70 ms round trip (35 ms one way), WebPageTest's "LTE"
    /// connectivity profile (`connectivity.ini.sample` of WPO-Foundation/webpagetest), with 5
    /// ms of jitter, 0.5 % loss in bursts of 3 packets on average (radio fades; this preset's
    /// choice) and a 100 ms buffer.
    pub fn mobile_4g() -> Conditions {
        Conditions::new()
            .rate(12_000_000)
            .delay(ms(35))
            .jitter(ms(5))
            .loss_model(bursts(0.005, 1.0 / 3.0))
            .buffer(ms(100))
    }

    /// 3G: 1.6 Mbit/s and a 150 ms round trip (75 ms one way), the download rate and round
    /// trip of WebPageTest's "3G Fast" profile (`connectivity.ini.sample`), with 10 ms of
    /// jitter, 1 % loss in bursts of 3 packets on average and a deep 300 ms buffer (the loss
    /// and the buffer are this preset's choice).
    pub fn mobile_3g() -> Conditions {
        Conditions::new()
            .rate(1_600_000)
            .delay(ms(75))
            .jitter(ms(10))
            .loss_model(bursts(0.01, 1.0 / 3.0))
            .buffer(ms(300))
    }

    /// A low-earth-orbit satellite link (Starlink): 50 Mbit/s, 20 ms one way (a round trip of
    /// about 40 ms) with 5 ms of jitter, 0.5 % loss in bursts of 4 packets on average (this
    /// preset's stand-in for the losses around satellite handovers), a 60 ms buffer. A
    /// dish in Belgium measured round trips to European servers of 50 ms at the median, 40 ms
    /// at the lower quartile (this preset's figure) and 20 ms at the least, and download rates
    /// that can exceed 300 Mbit/s (Michel et al., "A First Look at Starlink Performance", IMC
    /// 2022, as its authors sum it up in APNIC's blog, "Fact checking Starlink's performance
    /// figures", 28 November 2022); the rate, the loss and the buffer are this preset's choice.
    pub fn satellite_leo() -> Conditions {
        Conditions::new()
            .rate(50_000_000)
            .delay(ms(20))
            .jitter(ms(5))
            .loss_model(bursts(0.005, 0.25))
            .buffer(ms(60))
    }

    /// A geostationary satellite link: 10 Mbit/s, 300 ms one way (a round trip of 600 ms) with
    /// 5 ms of jitter, 0.5 % loss in bursts of 4 packets on average, a 300 ms buffer. One hop
    /// from a ground station up to a geostationary satellite (about 36,000 km high) and down
    /// to another takes 239.6 to 279.0 ms, so a round trip takes at least 558 ms (RFC 2488,
    /// "Enhancing TCP Over Satellite Channels using Standard Mechanisms", section 2); the
    /// rate, the jitter, the loss and the buffer are this preset's choice.
    pub fn satellite_geo() -> Conditions {
        Conditions::new()
            .rate(10_000_000)
            .delay(ms(300))
            .jitter(ms(5))
            .loss_model(bursts(0.005, 0.25))
            .buffer(ms(300))
    }

    /// A barely usable link (the bottom rung of the ladder that iroh tests along): 1 Mbit/s,
    /// 100 ms one way with 20 ms of jitter, 10 % loss in bursts of 2.5 packets on average,
    /// and a 500 ms buffer. ITU-T G.114 holds one-way delays above 400 ms unacceptable for
    /// general network planning; this link stays below that but loses one packet in ten.
    pub fn lossy() -> Conditions {
        Conditions::new()
            .rate(1_000_000)
            .delay(ms(100))
            .jitter(ms(20))
            .loss_model(bursts(0.1, 0.4))
            .buffer(ms(500))
    }
}
