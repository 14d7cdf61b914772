//! The databases the store's tests run against: every test that touches the store runs once
//! per backend. SQLite always; PostgreSQL in the throwaway cluster named by
//! `HINTS_TEST_POSTGRES` (an admin URL whose role may create databases; `scripts/test.sh`
//! starts one). Under CI the PostgreSQL half is never skipped: a missing cluster fails.

use std::sync::atomic::{AtomicUsize, Ordering};

use hints_analyzer::store::{Location, Store};

/// One fresh, empty database.
pub struct TestDb {
    /// The `--db` argument.
    pub arg: String,
    pub backend: &'static str,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub fn location(&self) -> Location {
        Location::parse(&self.arg).unwrap()
    }

    pub fn open(&self) -> Store {
        Store::open(self.location()).unwrap()
    }

    /// Runs `sql` on the database directly, past the store's rules (to damage it, or to
    /// pretend a newer hints wrote it).
    #[allow(dead_code)]
    pub fn execute(&self, sql: &str) {
        match self.location() {
            Location::File(path) => rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap(),
            Location::Postgres(url) => postgres::Client::connect(&url, postgres::NoTls).unwrap().batch_execute(sql).unwrap(),
        }
    }
}

/// A fresh database of every backend.
pub fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = TestDb { arg: dir.path().join("h.db").to_str().unwrap().to_string(), backend: "sqlite", _dir: dir };
    let mut out = vec![sqlite];
    match std::env::var("HINTS_TEST_POSTGRES") {
        Ok(admin) => out.push(postgres_database(&admin)),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => panic!("CI runs the PostgreSQL half: set HINTS_TEST_POSTGRES (scripts/test.sh starts a cluster)"),
        Err(_) => eprintln!("note: HINTS_TEST_POSTGRES is not set, so this ran on SQLite only (scripts/postgres.sh starts a cluster)"),
    }
    out
}

/// A new database in the cluster of `admin`, named for this process and test.
fn postgres_database(admin: &str) -> TestDb {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("t_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    postgres::Client::connect(admin, postgres::NoTls).unwrap().batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (server, rest) = admin.rsplit_once('/').unwrap();
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    TestDb { arg: format!("{server}/{name}{query}"), backend: "postgres", _dir: tempfile::tempdir().unwrap() }
}
