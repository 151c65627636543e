//! Test support shared by the integration tests of every crate: a fresh database with the demo
//! dataset, on SQLite and (when `XUEJI_TEST_DATABASE_URL` is set) on PostgreSQL.
//!
//! The demo dataset is seeded once per test process into a template (an SQLite file, or a
//! PostgreSQL template database) and each test gets its own copy, so tests stay independent and
//! fast.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{TimeZone, Utc};
use tokio::sync::OnceCell;

use crate::{App, Backend, Clock, Db};

/// The environment variable naming a PostgreSQL server for tests, e.g.
/// `postgres://root@127.0.0.1:5432/test`. Each test creates its own database there.
pub const PG_ENV: &str = "XUEJI_TEST_DATABASE_URL";

/// The backends to run storage tests on: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if std::env::var(PG_ENV).is_ok_and(|u| !u.is_empty()) {
        v.push(Backend::Postgres);
    }
    v
}

/// The fixed time tests run at: Monday 2 November 2026, 09:00 in Beijing.
pub fn test_clock() -> Clock {
    Clock::fixed(
        Utc.with_ymd_and_hms(2026, 11, 2, 1, 0, 0)
            .single()
            .expect("time"),
    )
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SQLITE_TEMPLATE: OnceCell<std::path::PathBuf> = OnceCell::const_new();
static PG_TEMPLATE: OnceCell<String> = OnceCell::const_new();

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn scratch_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join("xueji-tests");
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn pg_url_with_db(base: &str, db: &str) -> String {
    // Replace the path (database name) of the URL, keeping any query string.
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = head[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(head.len());
    format!("{}/{db}{query}", &head[..host_end])
}

async fn pg_admin_exec(sql: &str) {
    // PostgreSQL refuses `CREATE DATABASE … TEMPLATE t` while another session is connected to
    // `t` — including another clone of it running at the same moment. Clones are serialised within
    // the process, and a refusal caused by another process is retried.
    static ADMIN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = ADMIN.lock().await;
    let mut last = String::new();
    for attempt in 0..50u64 {
        match pg_admin_try(sql).await {
            Ok(()) => return,
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(std::time::Duration::from_millis(50 * (attempt + 1).min(10)))
                    .await;
            }
        }
    }
    panic!("admin statement failed after retries: {sql}: {last}");
}

async fn pg_admin_try(sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let base = std::env::var(PG_ENV).expect("PostgreSQL test URL");
    let mut c = sqlx::PgConnection::connect(&base).await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut c)
        .await
        .map(|_| ());
    let _ = c.close().await;
    r
}

/// An empty, migrated database (no reference data).
pub async fn empty_db(backend: Backend) -> Db {
    match backend {
        Backend::Sqlite => {
            let path = scratch_dir().join(format!("{}.db", unique("empty")));
            let db = Db::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("sqlite");
            db.migrate().await.expect("migrate");
            db
        }
        Backend::Postgres => {
            let name = unique("xueji_empty");
            pg_admin_exec(&format!("CREATE DATABASE {name}")).await;
            let base = std::env::var(PG_ENV).expect("url");
            let db = Db::connect(&pg_url_with_db(&base, &name))
                .await
                .expect("postgres");
            db.migrate().await.expect("migrate");
            db
        }
    }
}

/// A fresh copy of the demo dataset on `backend`, with the fixed [`test_clock`].
pub async fn demo_app(backend: Backend) -> App {
    demo_app_with_clock(backend, test_clock()).await
}

pub async fn demo_app_with_clock(backend: Backend, clock: Clock) -> App {
    let db = match backend {
        Backend::Sqlite => {
            let template = SQLITE_TEMPLATE
                .get_or_init(|| async {
                    let path = scratch_dir().join(format!("{}.db", unique("template")));
                    let db = Db::connect(&format!("sqlite://{}", path.display())).await.expect("sqlite");
                    db.migrate().await.expect("migrate");
                    let app = App::new(db.clone(), test_clock()).await.expect("app");
                    app.seed_demo().await.expect("seed");
                    // Fold the WAL into the main file so that a plain copy is complete.
                    crate::on_pool!(db.write(), p => sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(p).await.map(|_| ()))
                        .expect("checkpoint");
                    db.close().await;
                    path
                })
                .await;
            let path = scratch_dir().join(format!("{}.db", unique("demo")));
            std::fs::copy(template, &path).expect("copy template");
            Db::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("sqlite")
        }
        Backend::Postgres => {
            let template = PG_TEMPLATE
                .get_or_init(|| async {
                    let name = unique("xueji_template");
                    pg_admin_exec(&format!("CREATE DATABASE {name}")).await;
                    let base = std::env::var(PG_ENV).expect("url");
                    let db = Db::connect(&pg_url_with_db(&base, &name))
                        .await
                        .expect("postgres");
                    db.migrate().await.expect("migrate");
                    let app = App::new(db.clone(), test_clock()).await.expect("app");
                    app.seed_demo().await.expect("seed");
                    db.close().await;
                    name
                })
                .await;
            let name = unique("xueji_demo");
            pg_admin_exec(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
            let base = std::env::var(PG_ENV).expect("url");
            Db::connect(&pg_url_with_db(&base, &name))
                .await
                .expect("postgres")
        }
    };
    db.migrate().await.expect("migrate");
    let app = App::new(db, clock).await.expect("app");
    // The operator's key for TOTP secrets at rest (the server reads it at start).
    app.set_secret_key(crate::secret_key::SecretKey::random());
    app
}

/// Closes a test's database and, on PostgreSQL, drops it (SQLite files live in the temp dir).
pub async fn dispose(db: &Db) {
    if db.backend() != Backend::Postgres {
        db.close().await;
        return;
    }
    let name: Result<String, sqlx::Error> = crate::on_pool!(db.read(), p => sqlx::query_scalar("SELECT current_database()::text").fetch_one(p).await);
    db.close().await;
    if let Ok(name) = name {
        let _ = pg_admin_try(&format!("DROP DATABASE IF EXISTS {name}")).await;
    }
}
