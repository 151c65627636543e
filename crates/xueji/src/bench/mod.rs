//! `xueji bench`: province-scale benchmark scenarios that print each figure beside the bare
//! database's own, measured in the same run so that the ratio holds on a noisy machine.
//!
//! The run builds a province (default 10 million students in ~15,000 河南 schools, valid
//! identity numbers, a realistic spread over grades), then runs the chosen scenarios:
//! `import` (the import path vs a bare bulk INSERT / COPY of the same rows),
//! `lookup` (GET one student over HTTP vs a bare route running the same point query),
//! `lists` (dashboard and transfer queries at a million transfers), `workflow` (complete
//! transfers through the HTTP API vs a bare UPDATE + INSERT), `start` (`xueji demo` from
//! nothing, `xueji serve` on the province). docs/performance.md records the figures.

mod dataset;
mod import;
mod lists;
mod lookup;
mod start;
mod workflow;

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use xueji_app::db::Durability;
use xueji_app::{App, Backend, Clock, Db, on_pool};

pub struct BenchOpts {
    /// Students in the generated province.
    pub students: usize,
    /// Schools in the generated province (0: one per ~667 students, 15,000 at 10 million).
    pub schools: usize,
    /// Rows run through the import scenario (0: a tenth of the students).
    pub import_rows: usize,
    /// Transfers generated for the work-list scenario (0: a tenth of the students).
    pub list_transfers: usize,
    /// Complete transfers run through the HTTP API by the workflow scenario.
    pub transfers: usize,
    /// Concurrent HTTP clients of the workflow scenario.
    pub clients: usize,
    /// Concurrent HTTP clients of the lookup scenario.
    pub lookup_clients: usize,
    /// Seconds each lookup measurement runs.
    pub lookup_secs: u64,
    pub scenarios: Vec<String>,
    pub database_url: Option<String>,
    pub durability: Durability,
    /// Keep the generated database (SQLite file, PostgreSQL database) after the run.
    pub keep: bool,
}

pub const SCENARIOS: [&str; 5] = ["import", "lookup", "lists", "workflow", "start"];

/// Where the bench data lives: a fresh SQLite file, or a fresh database on the given
/// PostgreSQL server (dropped afterwards).
struct Scratch {
    url: String,
    pg_admin: Option<(String, String)>,
    sqlite_path: Option<std::path::PathBuf>,
}

async fn scratch(url: Option<&str>) -> anyhow::Result<Scratch> {
    let stamp = Utc::now().format("%Y%m%d%H%M%S").to_string();
    match url {
        Some(u) if u.starts_with("postgres") => {
            use sqlx::Connection;
            let name = format!("xueji_bench_{stamp}_{}", std::process::id());
            let mut c = sqlx::PgConnection::connect(u)
                .await
                .context("connect to PostgreSQL")?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await?;
            let _ = c.close().await;
            let (head, query) = u
                .split_once('?')
                .map(|(h, q)| (h, format!("?{q}")))
                .unwrap_or((u, String::new()));
            let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
            let host_end = head[scheme_end..]
                .find('/')
                .map(|i| i + scheme_end)
                .unwrap_or(head.len());
            Ok(Scratch {
                url: format!("{}/{name}{query}", &head[..host_end]),
                pg_admin: Some((u.to_string(), name)),
                sqlite_path: None,
            })
        }
        Some(u) => {
            let path = std::path::PathBuf::from(u.strip_prefix("sqlite://").unwrap_or(u));
            if path.exists() {
                bail!(
                    "{} exists; the benchmark needs a fresh file",
                    path.display()
                );
            }
            Ok(Scratch {
                url: format!("sqlite://{}", path.display()),
                pg_admin: None,
                sqlite_path: Some(path),
            })
        }
        None => {
            let path =
                std::env::temp_dir().join(format!("xueji-bench-{stamp}-{}.db", std::process::id()));
            Ok(Scratch {
                url: format!("sqlite://{}", path.display()),
                pg_admin: None,
                sqlite_path: Some(path),
            })
        }
    }
}

impl Scratch {
    async fn cleanup(self) {
        if let Some((admin, name)) = self.pg_admin {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await;
            }
        }
        if let Some(p) = self.sqlite_path {
            for suffix in ["", "-wal", "-shm", ".key"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
        }
    }
}

/// Peak resident memory of this process (VmHWM), in MB.
pub fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:") / 1024.0
}

/// Resident memory now (VmRSS), in MB.
pub fn rss_mb() -> f64 {
    status_kb("VmRSS:") / 1024.0
}

fn status_kb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Starts a new peak for [`peak_rss_mb`] (Linux: writing 5 to clear_refs resets VmHWM), so that
/// each scenario reports its own peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub async fn run(opts: BenchOpts) -> anyhow::Result<()> {
    for s in &opts.scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            bail!("unknown scenario {s}; known: {}", SCENARIOS.join(", "));
        }
    }
    let scratch = scratch(opts.database_url.as_deref()).await?;
    let result = run_in(&scratch, &opts).await;
    if opts.keep {
        println!("kept: {}", scratch.url);
    } else {
        scratch.cleanup().await;
    }
    result
}

async fn run_in(scratch: &Scratch, opts: &BenchOpts) -> anyhow::Result<()> {
    let wants = |s: &str| opts.scenarios.iter().any(|x| x == s);
    let db = Db::connect_with(&scratch.url, opts.durability).await?;
    db.migrate().await?;
    let backend = db.backend();
    let app = App::new(db.clone(), Clock::system()).await?;
    let dur = match (backend, opts.durability) {
        (Backend::Postgres, _) => {
            "PostgreSQL (synchronous_commit as configured on the server)".to_string()
        }
        (Backend::Sqlite, Durability::Full) => "SQLite WAL, synchronous=FULL".to_string(),
        (Backend::Sqlite, Durability::Normal) => "SQLite WAL, synchronous=NORMAL".to_string(),
    };
    println!("xueji bench — {dur}");
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    app.seed_demo().await?;
    let schools = if opts.schools == 0 {
        (opts.students / 667).max(20)
    } else {
        opts.schools
    };
    reset_peak_rss();
    let province = dataset::load(&db, opts.students, schools)
        .await
        .context("generate the province")?;
    println!(
        "dataset: {} students in {} schools ({} classes) of 河南, loaded in {:.1}s ({:.0} rows/s), peak RSS {:.0} MB",
        province.students,
        province.schools,
        province.classes,
        province.load_secs,
        province.students as f64 / province.load_secs,
        peak_rss_mb()
    );
    if wants("import") {
        reset_peak_rss();
        let n = if opts.import_rows == 0 {
            (opts.students / 10).max(1000)
        } else {
            opts.import_rows
        };
        import::run(&app, &db, n).await?;
    }
    if wants("lookup") {
        reset_peak_rss();
        lookup::run(&app, &db, &province, opts.lookup_clients, opts.lookup_secs).await?;
    }
    if wants("lists") {
        reset_peak_rss();
        let n = if opts.list_transfers == 0 {
            (opts.students / 10).max(1000)
        } else {
            opts.list_transfers
        };
        lists::run(&app, &db, &province, n).await?;
    }
    if wants("workflow") {
        reset_peak_rss();
        workflow::run(&app, &db, opts.transfers, opts.clients).await?;
    }
    db.close().await;
    if wants("start") {
        start::run(
            &scratch.url,
            &province.sample_nos,
            opts.lookup_clients,
            opts.lookup_secs,
        )
        .await?;
    }
    Ok(())
}

/// Signs a demo account in over the API (every demo account has the same password): its token.
pub(super) async fn login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
) -> anyhow::Result<String> {
    let r: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": xueji_app::seed::DEMO_PASSWORD }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(anyhow::Context::context(r["token"].as_str(), "token")?.to_string())
}

/// Drops the non-unique secondary indexes of `tables` (a quoted, comma-separated list) before a
/// bulk load, returning their definitions as the database reports them, so that
/// [`restore_indexes`] builds them again exactly as migrated.
pub async fn drop_indexes(db: &Db, tables: &str) -> anyhow::Result<Vec<String>> {
    let sql = match db.backend() {
        Backend::Sqlite => format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ({tables}) AND sql NOT LIKE 'CREATE UNIQUE%'"
        ),
        Backend::Postgres => format!(
            "SELECT indexname::text, indexdef::text FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename IN ({tables}) AND indexdef NOT LIKE 'CREATE UNIQUE%' AND indexname NOT LIKE '%_pkey'"
        ),
    };
    let rows: Vec<(String, String)> = on_pool!(db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(p).await)?;
    for (name, _) in &rows {
        let sql = format!("DROP INDEX {name}");
        on_pool!(db.write(), p => sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(p).await.map(|_| ()))?;
    }
    Ok(rows.into_iter().map(|(_, sql)| sql).collect())
}

/// Builds the dropped indexes again and refreshes the planner's statistics (PostgreSQL: and the
/// visibility map, as autovacuum would after a bulk load; without it every index-only count
/// visits the table).
pub async fn restore_indexes(db: &Db, dropped: &[String]) -> anyhow::Result<()> {
    for sql in dropped {
        on_pool!(db.write(), p => sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(p).await.map(|_| ()))?;
    }
    let analyze = match db.backend() {
        Backend::Sqlite => "PRAGMA analysis_limit = 1000; ANALYZE",
        Backend::Postgres => "VACUUM ANALYZE",
    };
    on_pool!(db.write(), p => sqlx::raw_sql(sqlx::AssertSqlSafe(analyze)).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// A value for [`bulk_insert`].
pub enum V {
    T(String),
    OT(Option<String>),
    I(i64),
    D(chrono::NaiveDate),
    OD(Option<chrono::NaiveDate>),
    Tm(chrono::DateTime<Utc>),
    B(bool),
    /// A mark column: 1 when true, NULL when false (`transfer_steps.waiting`).
    Mark(bool),
}

/// Inserts `rows` into `table` with statements of about a thousand parameters: bulk loads want
/// small statements on SQLite, whose cost per parameter grows with the statement's count.
pub async fn bulk_insert(
    tx: &mut xueji_app::db::Tx,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<V>>,
) -> anyhow::Result<()> {
    let per = (1000 / columns.len()).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let part: Vec<Vec<V>> = rows.by_ref().take(per).collect();
        let values: Vec<String> = (0..part.len())
            .map(|r| {
                let cells: Vec<String> = (1..=columns.len())
                    .map(|c| format!("${}", r * columns.len() + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(", "),
            values.join(", ")
        );
        xueji_app::on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for v in part.into_iter().flatten() {
                q = match v {
                    V::T(s) => q.bind(s),
                    V::OT(s) => q.bind(s),
                    V::I(i) => q.bind(i),
                    V::D(d) => q.bind(d),
                    V::OD(d) => q.bind(d),
                    V::Tm(t) => q.bind(t),
                    V::B(b) => q.bind(b),
                    V::Mark(m) => q.bind(m.then_some(1i16)),
                };
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(())
}
