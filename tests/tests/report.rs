//! The failure report: `report.json` and a self-contained `report.html` next to the test's
//! captures, named by the failure message, and rendered by a browser.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netns_test::{Conditions, Link, Network, Topology, TopologyBuilder, netns_test};
use netns_test_tests::{run_subject, subject};

fn captured_line() -> TopologyBuilder {
    Topology::builder()
        .host("alpha")
        .router("beta")
        .host("gamma")
        .auto_routes()
        .link(
            Link::new("alpha", "beta")
                .addrs("10.1.0.1/24", "10.1.0.2/24")
                .conditions(Conditions::new().delay(Duration::from_millis(1)).loss(0.01))
                .capture(),
        )
        .link(Link::new("beta", "gamma").addrs("10.2.0.1/24", "10.2.0.2/24"))
        .local("alpha")
}

#[netns_test(topology = captured_line)]
#[ignore = "fails on purpose; run by a_failed_test_writes_its_report"]
fn subject_fails_with_a_report(net: &Network) {
    net.local().ping("beta").count(2).interval(Duration::from_millis(10)).run().unwrap();
    net.link("alpha", "beta").set_conditions(Conditions::new().delay(Duration::from_millis(3))).unwrap();
    net.note("asking the service");
    let probe = net.node("beta").command("sh").args(["-c", "echo probing; exit 7"]).output().unwrap();
    assert_eq!(probe.status.code(), Some(7));
    println!("the service said: <nothing>");
    panic!("the service misbehaved");
}

/// Runs the failing subject in its own artifacts directory and returns the report's path, as
/// the failure message names it.
fn failed_report(dir: &Path) -> (PathBuf, String) {
    let _ = std::fs::remove_dir_all(dir);
    let outcome = run_subject(
        subject("subject_fails_with_a_report").env("NETNS_TEST_ARTIFACTS", dir).env("NETNS_TEST_SEED", "42"),
    );
    assert!(!outcome.status.success());
    let text = outcome.all();
    let line =
        text.lines().find_map(|line| line.strip_prefix("report: ")).unwrap_or_else(|| panic!("{text}"));
    (PathBuf::from(line.trim()), text)
}

fn artifacts(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("netns-test-report-{name}-{}", std::process::id()))
}

#[test]
fn a_failed_test_writes_its_report() {
    let dir = artifacts("json");
    let (html, text) = failed_report(&dir);
    assert_eq!(html.file_name().unwrap(), "report.html", "{text}");
    let test_dir = html.parent().unwrap();
    assert!(test_dir.starts_with(&dir), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(test_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], "netns-test-report/1");
    assert_eq!(json["outcome"], "failed");
    assert!(json["message"].as_str().unwrap().contains("the service misbehaved"), "{json}");
    assert_eq!(json["seed"], 42);
    let kinds: Vec<&str> =
        json["timeline"]["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["network_up", "ping", "conditions", "conditions", "note", "program_started", "program_exited"],
        "{json}"
    );
    let exited = &json["timeline"]["events"][6];
    assert_eq!(exited["subject"], "beta", "{json}");
    assert_eq!(exited["detail"], "sh -c echo probing; exit 7: exit status: 7; stdout: probing", "{json}");
    let ping = &json["timeline"]["events"][1];
    assert_eq!(ping["subject"], "alpha → beta", "the target as written: {json}");
    assert!(ping["detail"].as_str().unwrap().starts_with("2 packets transmitted"), "{json}");
    assert_eq!(json["sections"][0]["title"], "link counters", "{json}");
    assert_eq!(json["sections"][0]["lines"].as_array().unwrap().len(), 2, "{json}");
    let captures = json["captures"].as_array().unwrap();
    assert_eq!(captures.len(), 1, "{json}");
    assert!(Path::new(captures[0].as_str().unwrap()).exists(), "{json}");
    assert!(json["output"]["stdout"].as_str().unwrap().contains("the service said: <nothing>"), "{json}");
    let svg = json["topology_svg"].as_str().unwrap();
    let picture = roxmltree::Document::parse(svg).expect("the picture is well-formed SVG");
    let texts: String = picture.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect();
    for node in ["alpha", "beta", "gamma"] {
        assert!(texts.contains(node), "{node} is not in the picture: {svg}");
    }

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("&lt;nothing&gt;"), "the output is escaped");
    assert!(page.contains("<svg"), "the picture is inline");
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"), "nothing to fetch");
    let _ = std::fs::remove_dir_all(&dir);
}

#[netns_test]
#[ignore = "passes; run by report_always_writes_a_passing_test_s_report"]
fn subject_passes(net: &Network) {
    net.note("all well");
}

#[test]
fn report_always_writes_a_passing_test_s_report() {
    let dir = artifacts("always");
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = run_subject(
        subject("subject_passes").env("NETNS_TEST_ARTIFACTS", &dir).env("NETNS_TEST_REPORT", "always"),
    );
    assert!(outcome.status.success(), "{}", outcome.all());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("subject_passes/report.json")).unwrap()).unwrap();
    assert_eq!(json["outcome"], "passed");
    assert!(json["message"].is_null());
    assert_eq!(json["timeline"]["events"][1]["detail"], "all well", "{json}");
    assert!(dir.join("subject_passes/report.html").exists());
    let _ = std::fs::remove_dir_all(&dir);

    // Without it, a passing test writes none.
    let outcome = run_subject(subject("subject_passes").env("NETNS_TEST_ARTIFACTS", &dir));
    assert!(outcome.status.success(), "{}", outcome.all());
    assert!(!dir.join("subject_passes/report.json").exists());
}

/// Debian's `chromium`, when installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.exists())
    })
}

#[test]
fn the_report_renders_in_a_browser_and_loads_nothing() {
    let Some(browser) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI installs chromium (.ci/run); it is missing");
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = artifacts("html");
    let (html, text) = failed_report(&dir);
    let profile = dir.join("profile");
    // As root, Chromium needs --no-sandbox; the page is our own file.
    let output = Command::new(&browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", "--virtual-time-budget=2000", "--enable-logging=stderr", "--v=0"])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium starts");
    let dom = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}\n{text}");
    // The rendered page: the inline picture, the timeline's rows, every node's name, and the
    // filters the script adds (so the script ran).
    assert!(dom.contains("<svg"), "{dom}");
    for kind in ["network_up", "ping", "conditions", "note", "program_started", "program_exited"] {
        assert!(dom.contains(&format!("data-kind=\"{kind}\"")), "{kind}: {dom}");
    }
    for node in ["alpha", "beta", "gamma"] {
        assert!(dom.contains(node), "{node}: {dom}");
    }
    assert!(dom.contains("type=\"checkbox\""), "the script ran: {dom}");
    for line in log.lines() {
        assert!(!line.contains("http://") && !line.contains("https://") || line.contains("w3.org"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
