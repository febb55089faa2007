//! The failure report of a test: `report.json` for machines and `report.html` for people,
//! next to the test's captures (`target/netns-test/<test>/`), written by the parent from what
//! the child reported (its observations, seed and captures) and what the parent saw (the
//! verdict, the output).
//!
//! `report.html` is one self-contained file: its CSS, its script and the topology picture are
//! inline and it loads nothing, so it opens from a CI artifact. Sections and events are drawn
//! whatever their title or kind, so the features that add their own appear without changes
//! here.
//!
//! The JSON schema (`"schema": "netns-test-report/1"`):
//! - `test` (string), `outcome` (`"failed"` or `"passed"`), `message` (the failure message, or
//!   `null`), `seed` (the link conditions' seed, or `null`);
//! - `captures`: the pcap files, as paths;
//! - `sections`: `[{ "title": string, "lines": [string] }]`, state at the end (the link counters
//!   first, then what other features add);
//! - `timeline`: `{ "events": [{ "at_seconds": number, "kind": string, "subject": string,
//!   "detail": string }], "dropped": number }`, times counted from the moment the network was up;
//! - `output`: `{ "stdout": string, "stderr": string }`, what the test printed (bounded);
//! - `topology_svg`: the topology picture, an SVG document.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::timeline::Observations;

/// The most output a report keeps of each stream; the rest is cut, and the report says so.
pub(super) const OUTPUT_LIMIT: usize = 1 << 20;

/// What the report holds, as `report.json` writes it.
#[derive(Debug, Serialize)]
pub(super) struct Report<'a> {
    schema: &'static str,
    test: &'a str,
    outcome: &'static str,
    message: Option<&'a str>,
    seed: Option<u64>,
    captures: &'a [String],
    sections: Vec<SectionJson<'a>>,
    timeline: TimelineJson<'a>,
    output: OutputJson,
    topology_svg: &'a str,
}

#[derive(Debug, Serialize)]
struct SectionJson<'a> {
    title: &'a str,
    lines: &'a [String],
}

#[derive(Debug, Serialize)]
struct TimelineJson<'a> {
    events: Vec<EventJson<'a>>,
    dropped: u64,
}

#[derive(Debug, Serialize)]
struct EventJson<'a> {
    at_seconds: f64,
    kind: &'static str,
    subject: &'a str,
    detail: &'a str,
}

#[derive(Debug, Serialize)]
struct OutputJson {
    stdout: String,
    stderr: String,
}

/// The facts of one run, as the parent gathered them.
pub(super) struct Facts<'a> {
    pub(super) test: &'a str,
    /// The failure message; `None` for a test that passed.
    pub(super) message: Option<&'a str>,
    pub(super) seed: Option<u64>,
    pub(super) captures: &'a [String],
    pub(super) observed: &'a Observations,
    pub(super) stdout: &'a [u8],
    pub(super) stderr: &'a [u8],
}

impl<'a> Report<'a> {
    pub(super) fn new(facts: &Facts<'a>) -> Self {
        let observed = facts.observed;
        Report {
            schema: "netns-test-report/1",
            test: facts.test,
            outcome: if facts.message.is_some() { "failed" } else { "passed" },
            message: facts.message,
            seed: facts.seed,
            captures: facts.captures,
            sections: observed
                .sections
                .iter()
                .map(|section| SectionJson { title: &section.title, lines: &section.lines })
                .collect(),
            timeline: TimelineJson {
                events: observed
                    .timeline
                    .events
                    .iter()
                    .map(|event| EventJson {
                        at_seconds: event.at.as_secs_f64(),
                        kind: event.kind.name(),
                        subject: &event.subject,
                        detail: &event.detail,
                    })
                    .collect(),
                dropped: observed.timeline.dropped,
            },
            output: OutputJson { stdout: bounded(facts.stdout), stderr: bounded(facts.stderr) },
            topology_svg: &observed.picture,
        }
    }

    /// Writes `report.json` and `report.html` into `dir`; returns the HTML file's path.
    pub(super) fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        let html = dir.join("report.html");
        std::fs::write(&html, self.html(dir))?;
        Ok(html)
    }

    fn html(&self, dir: &Path) -> String {
        let mut page = String::with_capacity(64 * 1024);
        let title = format!("netns-test: {} {}", self.test, self.outcome);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
             <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
            escape(&title),
            escape(&title)
        );
        if let Some(message) = self.message {
            let _ = writeln!(page, "<h2>Failure</h2><pre id=\"failure\">{}</pre>", escape(message));
        }
        let seed = self.seed.map_or("none (no link has random conditions)".to_string(), |s| {
            format!("{s} (replay with NETNS_TEST_SEED={s})")
        });
        let _ = writeln!(page, "<p id=\"seed\">Link conditions seed: {}</p>", escape(&seed));
        let _ = writeln!(page, "<h2>Topology</h2><div id=\"topology\">{}</div>", self.topology_svg);
        page.push_str("<h2>Timeline</h2><p id=\"filters\"></p><table id=\"timeline\"><thead><tr><th>at</th><th>kind</th><th>subject</th><th>detail</th></tr></thead><tbody>\n");
        if self.timeline.dropped > 0 {
            let _ = writeln!(
                page,
                "<tr><td colspan=\"4\">… {} earlier events dropped</td></tr>",
                self.timeline.dropped
            );
        }
        for event in &self.timeline.events {
            let _ = writeln!(
                page,
                "<tr class=\"event\" data-kind=\"{kind}\"><td>+{at:.3}s</td><td class=\"kind\">{kind}</td><td>{}</td><td>{}</td></tr>",
                escape(event.subject),
                escape(event.detail),
                kind = escape(event.kind),
                at = event.at_seconds,
            );
        }
        page.push_str("</tbody></table>\n");
        for section in &self.sections {
            let _ = write!(page, "<h2 class=\"section\">{}</h2>", escape(section.title));
            if section.lines.is_empty() {
                page.push_str("<p>(nothing)</p>\n");
            } else {
                page.push_str("<pre>");
                for line in section.lines {
                    let _ = writeln!(page, "{}", escape(line));
                }
                page.push_str("</pre>\n");
            }
        }
        page.push_str("<h2>Captures</h2><ul id=\"captures\">");
        if self.captures.is_empty() {
            page.push_str("<li>none (capture a link with Link::capture or NETNS_TEST_CAPTURE=1)</li>");
        }
        for capture in self.captures {
            // A capture next to the report is linked relatively, so the link survives the
            // directory being moved (a CI artifact).
            let path = Path::new(capture);
            let href = match path.strip_prefix(dir) {
                Ok(relative) => relative.display().to_string(),
                Err(_) => capture.clone(),
            };
            let _ = write!(page, "<li><a href=\"{}\">{}</a></li>", escape(&href), escape(capture));
        }
        page.push_str("</ul>\n");
        let _ = writeln!(
            page,
            "<h2>Output</h2><h3>stdout</h3><pre id=\"stdout\">{}</pre><h3>stderr</h3><pre id=\"stderr\">{}</pre>",
            escape(&self.output.stdout),
            escape(&self.output.stderr)
        );
        let _ = writeln!(page, "<script>{SCRIPT}</script></body></html>");
        page
    }
}

fn bounded(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_LIMIT)]).into_owned();
    if bytes.len() > OUTPUT_LIMIT { text + "\n… (output cut)" } else { text }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:80em}\
pre{background:#f4f4f4;padding:.6em;overflow:auto}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}\
td.kind{font-family:monospace}#topology svg{max-width:100%;height:auto}\
#filters label{margin-right:1em}";

/// A checkbox per event kind, to hide the kinds one is not looking at.
const SCRIPT: &str = "(function(){var rows=document.querySelectorAll('tr.event');var kinds={};\
rows.forEach(function(r){kinds[r.dataset.kind]=1});var f=document.getElementById('filters');\
Object.keys(kinds).sort().forEach(function(k){var l=document.createElement('label');\
var c=document.createElement('input');c.type='checkbox';c.checked=true;c.onchange=function(){\
rows.forEach(function(r){if(r.dataset.kind===k){r.style.display=c.checked?'':'none'}})};\
l.appendChild(c);l.appendChild(document.createTextNode(' '+k));f.appendChild(l)})})();";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Event, EventKind, Recorded, Section};
    use std::time::Duration;

    #[test]
    fn the_page_escapes_and_draws_every_section_and_event() {
        let observed = Observations {
            sections: vec![Section { title: "nat <mappings>".into(), lines: vec!["a & b".into()] }],
            timeline: Recorded {
                events: vec![Event {
                    at: Duration::from_millis(1500),
                    kind: EventKind::Cut,
                    subject: "a:eth0 – b:eth0".into(),
                    detail: "<script>".into(),
                }],
                dropped: 0,
            },
            picture: "<svg></svg>".into(),
        };
        let captures = vec!["/out/t/link0-a-b.pcap".to_string()];
        let facts = Facts {
            test: "t",
            message: Some("boom"),
            seed: Some(7),
            captures: &captures,
            observed: &observed,
            stdout: b"hello",
            stderr: b"",
        };
        let report = Report::new(&facts);
        let html = report.html(Path::new("/out/t"));
        assert!(html.contains("nat &lt;mappings&gt;") && html.contains("a &amp; b"), "{html}");
        assert!(html.contains("&lt;script&gt;") && html.contains("+1.500s"), "{html}");
        assert!(html.contains("href=\"link0-a-b.pcap\""), "{html}");
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing to fetch: {html}");
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["timeline"]["events"][0]["kind"], "cut");
        assert_eq!(json["seed"], 7);
        assert_eq!(json["outcome"], "failed");
    }
}
