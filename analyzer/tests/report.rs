//! `hints report` on the bundled example (fixtures/fleet), checked as a page and, where
//! Chromium is installed (always in CI), in headless Chromium: it loads with no console message,
//! no error and no request, every section and chart is there, a known image's figure equals
//! `hints eval --json`'s, and a screenshot is produced.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{have_tools, ok, repo};

/// A history of the bundled example, a hint file learned from 0..6 and one from 0..3.
fn example(t: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (db, new, old) = (t.join("h.db"), t.join("new.yaml"), t.join("old.yaml"));
    let hints = env!("CARGO_BIN_EXE_hints");
    ok(Command::new(hints).arg("-q").arg("scan").arg("--db").arg(&db).arg("--dataset").arg(repo().join("fixtures/fleet")));
    for (file, range) in [(&new, "0..6"), (&old, "0..3")] {
        ok(Command::new(hints).args(["-q", "emit", "--no-previous", "--range", range]).arg("--db").arg(&db).arg("--out").arg(file));
    }
    (db, new, old)
}

fn report(db: &Path, new: &Path, extra: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hints")).arg("report").arg("--db").arg(db).arg("--hints").arg(new).args(extra).arg("--out").arg(out).output().unwrap()
}

/// `hints eval --json`'s update bytes of `image` under `strategy`.
fn eval_bytes(db: &Path, hints: &Path, image: &str, strategy: &str) -> u64 {
    let out = ok(Command::new(env!("CARGO_BIN_EXE_hints")).args(["eval", "--json", "--range", "6..12"]).arg("--db").arg(db).arg("--hints").arg(hints));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let result = v["results"].as_array().unwrap().iter().find(|r| r["strategy"] == strategy).unwrap();
    let pair = result["per_image_update_bytes"].as_array().unwrap().iter().find(|p| p[0] == image).unwrap();
    pair[1].as_u64().unwrap()
}

/// The value of `attr` on the first element that has `marker` (an attribute text) in `html`.
fn attribute(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag = &html[html[..at].rfind('<')?..at + html[at..].find('>')?];
    let start = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(tag[start..start + tag[start..].find('"')?].to_string())
}

fn chromium(args: &[&str], page: &Path, profile: &Path) -> Output {
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
    Command::new("chromium").args(flags).arg(format!("--user-data-dir={}", profile.display())).args(args).arg(format!("file://{}", page.display())).output().unwrap()
}

#[test]
fn the_page_is_self_contained_and_carries_the_history() {
    let t = tempfile::tempdir().unwrap();
    let (db, new, old) = example(t.path());
    let page = t.path().join("report.html");
    let out = report(&db, &new, &["--range", "6..12", "--previous", old.to_str().unwrap()], &page);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    // Nothing is fetched: the only URLs are SVG's namespace.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    assert_eq!(urls, html.matches("http://www.w3.org/2000/svg").count(), "the page refers to the network");
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    for section in ["id=\"replay\"", "id=\"tradeoff\"", "id=\"layers\"", "id=\"churn\"", "id=\"regenerate\""] {
        assert!(html.contains(section), "missing {section}");
    }
    // Three strategy bars, the trade-off curve, the layer map and the timeline.
    assert_eq!(html.matches("<svg").count(), 6);
    let cell = |image: &str, strategy: &str| attribute(&html, &format!("data-image=\"{image}\" data-strategy=\"{strategy}\""), "data-bytes").unwrap().parse::<u64>().unwrap();
    for (image, strategy) in [("devbox", "hints"), ("git", "size-first"), ("webstack", "floor")] {
        assert_eq!(cell(image, strategy), eval_bytes(&db, &new, image, strategy), "{image} under {strategy}");
    }
    assert_eq!(html.matches("<details class=\"layers\"").count(), 7, "one layer table per image");
    // Each image's row says how the file lays it out.
    let file = hints_format::HintFile::parse(&std::fs::read_to_string(&new).unwrap()).unwrap();
    for image in &file.learned_from.images {
        let row = &html[html.find(&format!("<tr data-image=\"{image}\">")).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.ends_with(&format!("<td class=\"treatment\">{}</td>", file.treatment(image))), "{image}: {row}");
    }
}

#[test]
fn headless_chromium_loads_it_cleanly_and_takes_a_screenshot() {
    if !have_tools(&["chromium"]) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (db, new, _) = example(t.path());
    let page = t.path().join("report.html");
    assert!(report(&db, &new, &["--range", "6..12"], &page).status.success());
    let dom = chromium(&["--enable-logging=stderr", "--log-level=0", "--dump-dom"], &page, &t.path().join("profile"));
    let (dom_text, log) = (String::from_utf8_lossy(&dom.stdout), String::from_utf8_lossy(&dom.stderr));
    assert!(dom.status.success(), "{log}");
    assert!(!log.contains(":CONSOLE"), "the page wrote to the console: {log}");
    let body = |attr: &str| attribute(&dom_text, "data-ready", attr);
    assert_eq!(body("data-ready").as_deref(), Some("1"), "the page's script did not finish");
    assert_eq!(body("data-errors").as_deref(), Some("0"));
    assert_eq!(body("data-resources").as_deref(), Some("0"));
    // The browser parsed the charts and the data the test reads in the raw file.
    assert_eq!(dom_text.matches("<svg").count(), 6);
    let hints_bytes = attribute(&dom_text, "data-image=\"devbox\" data-strategy=\"hints\"", "data-bytes").unwrap();
    assert_eq!(hints_bytes.parse::<u64>().unwrap(), eval_bytes(&db, &new, "devbox", "hints"));

    let shot = t.path().join("report.png");
    let out = chromium(&["--hide-scrollbars", "--window-size=1280,2400", &format!("--screenshot={}", shot.display())], &page, &t.path().join("profile"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "screenshot of {} bytes", png.len());
}

#[test]
fn a_database_without_revisions_is_bad_input_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let (db, empty) = (t.path().join("e.db"), t.path().join("empty.json"));
    std::fs::write(&empty, "[]").unwrap();
    // A scan that fails leaves the database created and empty.
    let scan = Command::new(env!("CARGO_BIN_EXE_hints")).arg("scan").arg("--db").arg(&db).args(["--image", "x", "--rev", "r", "--time", "2025-01-01T00:00:00Z"]).arg(&empty).output().unwrap();
    assert_eq!(scan.status.code(), Some(2));
    let hints = t.path().join("h.yaml");
    std::fs::write(&hints, "version: 2\nbudget: {max_layers: 100, reserve: 1}\n").unwrap();
    let out = report(&db, &hints, &[], &t.path().join("r.html"));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no revision yet"));
}

#[test]
fn a_range_without_an_update_is_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let (db, new, _) = example(t.path());
    let out = report(&db, &new, &["--range", "4..4"], &t.path().join("r.html"));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no update"));
    assert!(!t.path().join("r.html").exists());
}

/// The churn timeline names the group a changed path lands in as the layerer places it: a
/// renamed package (`libfoo2` for `libfoo1`) in its predecessor's group.
#[test]
fn the_churn_timeline_gives_a_renamed_package_its_predecessors_group() {
    use hints_analyzer::{history::History, report, store::Revision, store::Store, synth::store_path};
    use sha2::{Digest, Sha256};
    let t = tempfile::tempdir().unwrap();
    let mut store = Store::open(&t.path().join("h.db")).unwrap();
    for (r, names) in [["base-1.0", "libfoo1-1.0"], ["base-1.0", "libfoo2-2.0"]].iter().enumerate() {
        let infos = names.iter().map(|n| layering_core::PathInfo::new(store_path(&Sha256::digest(n.as_bytes()), n), 1_000_000, vec![])).collect();
        let rev = Revision { label: format!("r{r}"), commit: None, time: format!("2025-01-0{}T00:00:00Z", r + 1), branch: None, dirty: false };
        store.ingest("app", &rev, &layering_core::Closure::new(infos).unwrap(), true).unwrap();
    }
    let history = History::load(&store, None).unwrap();
    let mut hints = hints_format::HintFile::new(hints_format::BudgetHeader { max_layers: 10, reserve: 1 });
    hints.groups = vec![hints_format::Group { id: "foo".into(), members: vec!["libfoo1".into()], stats: Default::default() }];
    let req = report::Request { source: "h.db".into(), hints_name: "h.yaml".into(), hints: &hints, budget: layering_core::Budget::new(10, 1).unwrap(), previous: None };
    let built = report::build(&history, (0, 1), &req).unwrap();
    let changed = &built.churn[0].changed;
    assert_eq!(changed, &[("libfoo2".to_string(), 1_000_000, Some("foo".to_string()))]);
}
