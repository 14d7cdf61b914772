//! `hints serve` against a real server on 127.0.0.1, on every store backend: push, list, hint
//! file and eval round trips; every refusal (no token, a wrong one, a narrower scope, another
//! project's) writes nothing; bad and oversized bodies; SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hints_format::HintFile;

mod backends;
use backends::{databases, TestDb};

fn hints(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_hints")).args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn graph(image: &str, revision: usize) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/fleet/graphs/{image}/{revision}.json"))
}

/// A server on a free port of 127.0.0.1, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(db: &TestDb, extra: &[&str]) -> Server {
        let mut child =
            Command::new(env!("CARGO_BIN_EXE_hints")).args([&["serve", "--db", &db.arg, "--listen", "127.0.0.1:0"][..], extra].concat()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line}")).to_string();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server { child, base: format!("http://{address}"), agent }
    }

    /// Sends a request; returns the status and the body.
    fn send(&self, method: &str, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = match body {
            Some(b) => self.agent.run(request.body(b.to_vec()).unwrap()),
            None => self.agent.run(request.body(()).unwrap()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    }

    fn push(&self, token: Option<&str>, project: &str, image: &str, revision: usize, encoding: &str, body: &[u8]) -> (u16, String) {
        let path = format!("/v1/projects/{project}/snapshots?image={image}&revision=r{revision}&time=2025-01-{:02}T00:00:00Z", revision + 1);
        self.send("POST", &path, token, &[("Content-Encoding", encoding)], Some(body))
    }

    fn count(&self, token: &str, project: &str) -> usize {
        let (status, body) = self.send("GET", &format!("/v1/projects/{project}/snapshots"), Some(token), &[], None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["snapshots"].as_array().unwrap().len()
    }

    /// The status answered to a push that declares a body of `length` bytes and sends none of
    /// it: a server that checks the length first answers without reading.
    fn declared_too_large(&self, token: &str, length: usize) -> u16 {
        let mut stream = std::net::TcpStream::connect(self.base.trim_start_matches("http://")).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let head =
            format!("POST /v1/projects/web/snapshots?image=git&revision=r1&time=2025-01-02T00:00:00Z HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{line}"))
    }

    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn push_list_hint_file_and_eval_round_trips_on_every_backend() {
    for db in databases() {
        let admin = hints(&["token", "create", "--db", &db.arg, "--project", "web", "--scope", "admin"]).trim().to_string();
        let reader = hints(&["token", "create", "--db", &db.arg, "--project", "web", "--scope", "read"]).trim().to_string();
        let server = Server::start(&db, &[]);
        // 2 images x 8 revisions, in each encoding.
        for revision in 0..8 {
            for image in ["git", "python3"] {
                let json = std::fs::read(graph(image, revision)).unwrap();
                let (encoding, body) = match revision % 3 {
                    0 => ("identity", json),
                    1 => ("gzip", gzip(&json)),
                    _ => ("zstd", zstd::encode_all(&json[..], 0).unwrap()),
                };
                let (status, answer) = server.push(Some(&admin), "web", image, revision, encoding, &body);
                assert_eq!(status, 200, "{}: {answer}", db.backend);
                assert!(answer.contains("\"outcome\":\"added\""), "{answer}");
            }
        }
        assert_eq!(server.count(&reader, "web"), 16);
        // The hint file, then the same one from the cache or as 304 by its ETag.
        let (status, yaml) = server.send("GET", "/v1/projects/web/hints?max_layers=30&range=r0..r5", Some(&reader), &[], None);
        assert_eq!(status, 200, "{yaml}");
        let file = HintFile::parse(&yaml).unwrap();
        assert_eq!(file.budget.max_layers, 30);
        assert!(!file.groups.is_empty());
        let response = server.agent.get(format!("{}/v1/projects/web/hints?max_layers=30&range=r0..r5", server.base)).header("Authorization", format!("Bearer {reader}")).call().unwrap();
        let etag = response.headers().get("etag").unwrap().to_str().unwrap().to_string();
        let (status, _) = server.send("GET", "/v1/projects/web/hints?max_layers=30&range=r0..r5", Some(&reader), &[("If-None-Match", &etag)], None);
        assert_eq!(status, 304);
        // Eval of that file on the later revisions.
        let (status, table) = server.send("POST", "/v1/projects/web/eval?range=r5..r7", Some(&reader), &[], Some(yaml.as_bytes()));
        assert_eq!(status, 200, "{table}");
        let table: serde_json::Value = serde_json::from_str(&table).unwrap();
        let strategies: Vec<&str> = table["results"].as_array().unwrap().iter().map(|r| r["strategy"].as_str().unwrap()).collect();
        assert!(strategies.contains(&"hints") && strategies.contains(&"size-first"), "{strategies:?}");
        assert_eq!(table["images"], serde_json::json!(["git", "python3"]));
        let (status, why) = server.send("POST", "/v1/projects/web/explain/git?image=git", Some(&reader), &[], Some(yaml.as_bytes()));
        assert_eq!(status, 200, "{why}");
        let why: serde_json::Value = serde_json::from_str(&why).unwrap();
        assert!(why["explanation"].is_object() && why["in_image"].is_array(), "{why}");
        let (status, metrics) = server.send("GET", "/metrics", Some(&admin), &[], None);
        assert_eq!(status, 200);
        assert!(metrics.contains("hints_snapshots_ingested_total 16"), "{metrics}");
        let counted = |status: u16| {
            metrics
                .lines()
                .find(|l| l.starts_with("hints_requests_total") && l.contains("endpoint=\"hints\"") && l.contains(&format!("status=\"{status}\"")))
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
        };
        assert_eq!((counted(200).as_deref(), counted(304).as_deref()), (Some("2"), Some("1")), "the 304 is counted as sent: {metrics}");
        let status = server.stop();
        assert!(status.success(), "SIGTERM stops the server cleanly: {status:?}");
    }
}

#[test]
fn every_refusal_writes_nothing() {
    for db in databases() {
        let admin = hints(&["token", "create", "--db", &db.arg, "--project", "web", "--scope", "admin"]).trim().to_string();
        let reader = hints(&["token", "create", "--db", &db.arg, "--project", "web", "--scope", "read"]).trim().to_string();
        let other = hints(&["token", "create", "--db", &db.arg, "--project", "api", "--scope", "push"]).trim().to_string();
        let server = Server::start(&db, &["--max-body-mib", "1"]);
        let json = std::fs::read(graph("git", 0)).unwrap();
        assert_eq!(server.push(Some(&admin), "web", "git", 0, "identity", &json).0, 200);
        let before = (db.open().summary_hash().unwrap(), server.count(&admin, "web"));
        let wrong = format!("hints_{}", "0".repeat(64));
        let cases: [(Option<&str>, u16, &str); 4] =
            [(None, 401, "no token"), (Some(&wrong), 401, "not one this server issued"), (Some(&reader), 403, "scope is `read`"), (Some(&other), 403, "project `api`")];
        for (token, code, says) in cases {
            let (status, body) = server.push(token, "web", "git", 1, "identity", &std::fs::read(graph("git", 1)).unwrap());
            assert_eq!((status, body.contains(says)), (code, true), "{}: {body}", db.backend);
        }
        // A bad body: 400 with the located message.
        let (status, body) = server.push(Some(&admin), "web", "git", 1, "identity", b"[{\"path\": 12}]");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("git@r1") && body.contains("[0].path"), "{body}");
        let (status, body) = server.push(Some(&admin), "web", "git", 1, "gzip", b"not gzip");
        assert_eq!(status, 400, "{body}");
        // Too large as sent, and too large once decompressed.
        assert_eq!(server.declared_too_large(&admin, 3 << 20), 413);
        let (status, body) = server.push(Some(&admin), "web", "git", 1, "gzip", &gzip(&vec![b' '; 3 << 20]));
        assert_eq!(status, 413, "{body}");
        assert_eq!((db.open().summary_hash().unwrap(), server.count(&admin, "web")), before, "{}: nothing was written", db.backend);
        assert_eq!(server.send("GET", "/v1/projects/api/snapshots", Some(&reader), &[], None).0, 403, "reading another project");
        assert_eq!(server.send("GET", "/metrics", Some(&reader), &[], None).0, 403);
        assert_eq!(server.send("GET", "/healthz", None, &[], None).0, 200);
        assert_eq!(server.send("GET", "/v1/nothing", Some(&admin), &[], None).0, 404);
        server.stop();
    }
}

/// `hints emit` output without the line naming the database it learned from.
fn without_db_summary(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("db_summary:")).collect::<Vec<_>>().join("\n")
}

#[test]
fn scan_and_emit_through_the_server_give_the_file_a_local_database_gives() {
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fleet");
    let fleet = fleet.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local.db");
    hints(&["-q", "scan", "--db", local.to_str().unwrap(), "--dataset", fleet]);
    let local_file = tmp.path().join("local.yaml");
    hints(&["-q", "emit", "--db", local.to_str().unwrap(), "--range", "0..6", "--no-previous", "--out", local_file.to_str().unwrap()]);
    for db in databases() {
        let token = hints(&["token", "create", "--db", &db.arg, "--project", "fleet", "--scope", "push"]).trim().to_string();
        let server = Server::start(&db, &[]);
        let remote = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_hints")).args(args).args(["--server", &server.base, "--project", "fleet"]).env("HINTS_TOKEN", &token).output().unwrap();
        let o = remote(&["scan", "--dataset", fleet]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("91 snapshots pushed: 91 added"), "{}", String::from_utf8_lossy(&o.stdout));
        let o = remote(&["scan", "--dataset", fleet]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("91 unchanged"), "a re-push changes nothing");
        let out = tmp.path().join(format!("{}.yaml", db.backend));
        let o = remote(&["emit", "--range", "0..6", "--no-previous", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (here, there) = (std::fs::read_to_string(&local_file).unwrap(), std::fs::read_to_string(&out).unwrap());
        assert_eq!(without_db_summary(&here), without_db_summary(&there), "{}", db.backend);
        // With the file as the previous one: hysteresis keeps it.
        let o = remote(&["emit", "--range", "0..6", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(without_db_summary(&std::fs::read_to_string(&out).unwrap()), without_db_summary(&there));
        server.stop();
    }
    // No token, and no server.
    let o = Command::new(env!("CARGO_BIN_EXE_hints")).args(["scan", "--dataset", fleet, "--server", "http://127.0.0.1:9", "--project", "fleet"]).env_remove("HINTS_TOKEN").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HINTS_TOKEN"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = Command::new(env!("CARGO_BIN_EXE_hints"))
        .args(["emit", "--server", &format!("http://127.0.0.1:{closed}"), "--project", "fleet", "--out", "/dev/null"])
        .env("HINTS_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("after 4 attempts"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_server_killed_mid_load_and_restarted_loses_no_acknowledged_snapshot() {
    let db = databases().remove(0);
    let token = hints(&["token", "create", "--db", &db.arg, "--project", "fleet", "--scope", "push"]).trim().to_string();
    let server = Server::start(&db, &[]);
    let address = server.base.trim_start_matches("http://").to_string();
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fleet");
    // -v: a line per acknowledged snapshot.
    let mut client = Command::new(env!("CARGO_BIN_EXE_hints"))
        .args(["-v", "scan", "--dataset", fleet.to_str().unwrap(), "--server", &server.base, "--project", "fleet"])
        .env("HINTS_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut acknowledged = vec![];
    while acknowledged.len() < 10 {
        acknowledged.push(lines.next().unwrap().unwrap());
    }
    let mut killed = server.child;
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    // Restarted on the same address while the client retries.
    let restarted = Command::new(env!("CARGO_BIN_EXE_hints")).args(["serve", "--db", &db.arg, "--listen", &address]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    acknowledged.extend(lines.map(Result::unwrap));
    let o = client.wait_with_output().unwrap();
    assert!(o.status.success(), "the client's retries complete the scan: {}", String::from_utf8_lossy(&o.stderr));
    let store = db.open();
    let history = hints_analyzer::history::History::load(&store, None).expect("no snapshot is half-written");
    assert_eq!(history.snapshots.len(), 91);
    let stored: std::collections::BTreeSet<(String, String)> = store.snapshot_rows().unwrap().into_iter().map(|r| (r.image, r.revision)).collect();
    for line in acknowledged.iter().filter(|l| l.contains(" @ ")) {
        let (image, rest) = line.split_once(" @ ").unwrap();
        let revision = rest.split_once(": ").unwrap().0;
        assert!(stored.contains(&(format!("fleet/{image}"), revision.to_string())), "{line}");
    }
    Server { child: restarted, base: format!("http://{address}"), agent: ureq::Agent::new_with_defaults() }.stop();
}
