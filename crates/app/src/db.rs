//! The storage seam: one enum over the two native sqlx pools, one SQL text for both.
//!
//! SQL is written once in the dialects' common subset (`$N` placeholders, `RETURNING`,
//! `ON CONFLICT`); the [`on_pool!`] and [`on_tx!`] macros expand a body once per backend so that
//! each branch is type-checked against its own driver. No `Any` driver: it lacks date types.
//!
//! SQLite profile (DESIGN.md §2): WAL, `synchronous=FULL` by default, foreign keys on,
//! `busy_timeout` 5 s, ONE writer connection (writes queue in-process instead of fighting over
//! SQLITE_BUSY) and a pool of readers.
//!
//! Group commit on SQLite: every transaction of a use case is a SAVEPOINT inside one physical
//! transaction on the writer connection; the physical COMMIT (the fsync) happens once the queue of
//! waiting writers is drained, and each caller's `commit()` returns only after it. Under load many
//! logical transactions share one fsync; alone, a transaction commits at once. A logical
//! transaction that fails or is dropped is rolled back to its savepoint without touching the
//! others.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::AppError;

/// Which database engine a [`Db`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// What follows a text column to compare it by code point, as the name indexes are built:
    /// SQLite compares text bytewise already; PostgreSQL's name indexes are in the "C"
    /// collation (migration 0018), so a prefix is an index range even in a generic plan.
    pub fn code_point_order(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " COLLATE \"C\"",
        }
    }

    /// What precedes a DATE column compared row by row (not as an index range) with a bound
    /// date. SQLite gives a DATE column NUMERIC affinity, and then tries to read the bound text
    /// as a number at every comparison (`sqlite3AtoF`: 13 % of a province's 督办 dashboard);
    /// `+column` has no affinity, so two texts are compared as they are, with the same result.
    /// PostgreSQL compares dates as dates.
    pub fn date_as_is(self) -> &'static str {
        match self {
            Backend::Sqlite => "+",
            Backend::Postgres => "",
        }
    }
}

/// A pool to run one statement on (reads go to readers, writes to the writer).
#[derive(Clone, Copy)]
pub enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Pg(&'a PgPool),
}

/// An open transaction on either backend.
pub enum Tx {
    Sqlite(SqliteTx),
    Pg(Transaction<'static, Postgres>),
}

impl Tx {
    /// Makes the transaction durable; on SQLite, returns once the shared commit holding it is done.
    pub async fn commit(self) -> Result<(), AppError> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Pg(t) => Ok(t.commit().await?),
        }
    }
}

/// The group-commit state of the SQLite writer.
pub struct Batcher {
    pool: SqlitePool,
    state: Arc<Mutex<Batch>>,
    stats: Arc<GroupCommitStats>,
}

/// Counters of the SQLite group commit since the database was opened (for the benchmark).
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    /// Logical transactions released into a batch.
    pub released: AtomicU64,
    /// Physical commits (each one fsync at `synchronous=FULL`).
    pub commits: AtomicU64,
    /// Nanoseconds the writer was held by logical transactions, from `begin` to their release.
    pub held_ns: AtomicU64,
    /// Nanoseconds in physical COMMITs.
    pub commit_ns: AtomicU64,
    /// Nanoseconds callers waited, after their release, for the commit holding them.
    pub wait_ns: AtomicU64,
}

fn add_ns(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

#[derive(Default)]
struct Batch {
    /// The physical transaction, open while logical ones are pending.
    tx: Option<Transaction<'static, Sqlite>>,
    /// Callers whose logical transaction is released into `tx`, waiting for the physical commit.
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    /// A flush has been scheduled and not yet run.
    flush_scheduled: bool,
    /// A dropped logical transaction left its savepoint open: roll it back before anything else.
    abandoned: bool,
    /// A dropped solo transaction left the physical transaction open: roll it all back.
    abandoned_solo: bool,
    /// The last logical transaction is done but its savepoint is still open: the next one
    /// releases it in the same call that opens its own, and COMMIT releases it anyway. One
    /// round trip to the connection's thread fewer while the writer is held. Only ever set
    /// while `tx` is open: whatever ends `tx` clears it.
    release_pending: bool,
    stats: Arc<GroupCommitStats>,
}

/// Logical transactions follow one another (each holds the batch until it is released), so one
/// savepoint name serves them all, and its three statements stay prepared in sqlx's cache instead
/// of a new text per transaction pushing the real queries out of it.
const SAVEPOINT: &str = "SAVEPOINT xj";
const RELEASE: &str = "RELEASE xj";
/// The savepoint of the transaction before, released as this one's is opened (SQLite runs both
/// statements of one text in one call).
const RELEASE_AND_SAVEPOINT: &str = "RELEASE xj; SAVEPOINT xj";
const ROLLBACK_TO: &str = "ROLLBACK TO xj";

impl Batch {
    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.tx.as_mut().expect("an open batch")
    }

    /// Rolls the physical transaction back and fails everyone waiting for its commit.
    async fn fail(&mut self, e: &sqlx::Error) {
        self.release_pending = false;
        if let Some(tx) = self.tx.take() {
            let _ = tx.rollback().await;
        }
        for w in std::mem::take(&mut self.waiters) {
            let _ = w.send(Err(e.to_string()));
        }
    }

    /// Rolls back a savepoint that a dropped logical transaction left behind.
    async fn clean_up(&mut self) -> Result<(), sqlx::Error> {
        if std::mem::take(&mut self.abandoned_solo) {
            self.release_pending = false;
            if let Some(tx) = self.tx.take() {
                tx.rollback().await?;
            }
            return Ok(());
        }
        if std::mem::take(&mut self.abandoned) && self.tx.is_some() {
            let c = self.conn();
            sqlx::query(ROLLBACK_TO).execute(&mut *c).await?;
            sqlx::query(RELEASE).execute(&mut *c).await?;
        }
        Ok(())
    }
}

/// One logical transaction on SQLite: a savepoint inside the current batch.
pub struct SqliteTx {
    guard: Option<OwnedMutexGuard<Batch>>,
    state: Arc<Mutex<Batch>>,
    began: Instant,
    /// The physical transaction itself, not a savepoint in a shared one ([`Db::begin_solo`]).
    solo: bool,
}

impl SqliteTx {
    /// The connection, inside the open savepoint.
    pub fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.guard
            .as_mut()
            .expect("open logical transaction")
            .conn()
    }

    async fn commit(mut self) -> Result<(), AppError> {
        let mut guard = self.guard.take().expect("open logical transaction");
        if self.solo {
            let tx = guard.tx.take().expect("the solo transaction");
            let stats = guard.stats.clone();
            add_ns(&stats.held_ns, self.began);
            stats.released.fetch_add(1, Ordering::Relaxed);
            let t0 = Instant::now();
            let r = tx.commit().await;
            add_ns(&stats.commit_ns, t0);
            stats.commits.fetch_add(1, Ordering::Relaxed);
            return Ok(r?);
        }
        // Its savepoint is released by whatever runs next on the writer: the next transaction's
        // begin, or the COMMIT (nothing in between can roll it back: a later transaction rolls
        // back only to its own savepoint).
        guard.release_pending = true;
        let stats = guard.stats.clone();
        add_ns(&stats.held_ns, self.began);
        stats.released.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        guard.waiters.push(tx);
        if !guard.flush_scheduled {
            guard.flush_scheduled = true;
            // A task of its own, so that a caller dropped mid-await (a client hanging up) cannot
            // strand the others' commit.
            tokio::spawn(flush(self.state.clone()));
        }
        drop(guard);
        let waiting = Instant::now();
        let result = rx.await;
        add_ns(&stats.wait_ns, waiting);
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AppError::Other(format!("commit failed: {e}"))),
            Err(_) => Err(AppError::Other("commit abandoned".into())),
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Not committed (an error, or the future was dropped): undo this savepoint before the
        // batch goes on. Its guard is still held here, so nobody else ran in between.
        if let Some(mut g) = self.guard.take() {
            if self.solo {
                g.abandoned_solo = true;
            } else {
                g.abandoned = true;
            }
            // The physical transaction must not stay open holding the only writer connection
            // when no other writer follows: flush it (rolling this savepoint back first).
            if !g.flush_scheduled
                && let Ok(rt) = tokio::runtime::Handle::try_current()
            {
                g.flush_scheduled = true;
                rt.spawn(flush(self.state.clone()));
            }
        }
    }
}

/// Commits the batch once every writer queued before it has joined (tokio's mutex is FIFO).
async fn flush(state: Arc<Mutex<Batch>>) {
    let mut g = state.lock_owned().await;
    g.flush_scheduled = false;
    commit_batch(&mut g).await;
}

/// Commits what the batch holds and answers its waiters.
async fn commit_batch(g: &mut Batch) {
    let cleaned = g.clean_up().await;
    // COMMIT releases every open savepoint, and a rollback discards them.
    g.release_pending = false;
    let waiters = std::mem::take(&mut g.waiters);
    let stats = g.stats.clone();
    let result = match (g.tx.take(), cleaned) {
        (Some(tx), Ok(())) => {
            let t0 = Instant::now();
            let r = tx.commit().await.map_err(|e| e.to_string());
            add_ns(&stats.commit_ns, t0);
            stats.commits.fetch_add(1, Ordering::Relaxed);
            r
        }
        (Some(tx), Err(e)) => {
            let _ = tx.rollback().await;
            Err(e.to_string())
        }
        (None, _) => Ok(()),
    };
    for w in waiters {
        let _ = w.send(result.clone());
    }
}

impl Batcher {
    async fn begin(&self) -> Result<SqliteTx, AppError> {
        let mut g = self.state.clone().lock_owned().await;
        let began = Instant::now();
        if let Err(e) = g.clean_up().await {
            // The physical transaction is unusable.
            g.fail(&e).await;
            return Err(e.into());
        }
        if g.tx.is_none() {
            g.tx = Some(self.pool.begin().await?);
        }
        let sql = if std::mem::take(&mut g.release_pending) {
            RELEASE_AND_SAVEPOINT
        } else {
            SAVEPOINT
        };
        if let Err(e) = sqlx::query(sql).execute(g.conn()).await {
            // Whether the release before it took effect is unknown: fail the whole batch rather
            // than commit a transaction whose savepoint state is unclear.
            g.fail(&e).await;
            return Err(e.into());
        }
        Ok(SqliteTx {
            guard: Some(g),
            state: self.state.clone(),
            began,
            solo: false,
        })
    }

    /// A physical transaction of its own: what is pending in the batch is committed first.
    async fn begin_solo(&self) -> Result<SqliteTx, AppError> {
        let mut g = self.state.clone().lock_owned().await;
        let began = Instant::now();
        commit_batch(&mut g).await;
        g.tx = Some(self.pool.begin().await?);
        Ok(SqliteTx {
            guard: Some(g),
            state: self.state.clone(),
            began,
            solo: true,
        })
    }
}

/// Runs `$body` with `$p` bound to the concrete pool of either backend.
#[macro_export]
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Pg($p) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the connection of an open [`Tx`] (`&mut *$c` is an executor).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => {
                let $c = t.conn();
                $body
            }
            $crate::db::Tx::Pg(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// PostgreSQL connections of one process: a step holds one for its transaction while the other
/// clients' reads go on beside it.
const PG_POOL_SIZE: u32 = 16;
/// A pooled PostgreSQL connection idle longer than this is pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(30);

/// SQLite durability of commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged commit survives a power cut.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process, may lose the last commits on power loss.
    Normal,
}

#[derive(Clone)]
pub enum Db {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
        batcher: Arc<Batcher>,
    },
    Postgres(PgPool),
}

impl Db {
    /// Opens `sqlite://PATH`, a bare path, or `postgres://…`. A missing SQLite file is created.
    pub async fn connect(url: &str) -> Result<Self, AppError> {
        Self::connect_with(url, Durability::default()).await
    }

    pub async fn connect_with(url: &str, durability: Durability) -> Result<Self, AppError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            // One plain connection first: an unreachable server or a refused login is reported
            // at once with its real cause, not as a pool timeout ten seconds later.
            {
                use sqlx::Connection;
                let c = sqlx::PgConnection::connect_with(&opts).await?;
                let _ = c.close().await;
            }
            let pool = PgPoolOptions::new()
                .max_connections(PG_POOL_SIZE)
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings every connection it hands out: a round trip per statement run on the
                // pool. Ping only one that sat idle long enough for the server to have dropped it.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > IDLE_BEFORE_PING {
                            use sqlx::Connection;
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(opts)
                .await?;
            return Ok(Db::Postgres(pool));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let sync = match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // 64 MB per connection, readers too: 16 MB readers halved the server's peak (538 →
            // 275 MB at 10 million students) but slowed lookups 6–10 % and a province's
            // dashboard by a third at 1 million (docs/performance.md, fifth pass).
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        // A file connection cannot be dropped by a server: no ping before each use (sqlx's default
        // costs a round trip to the connection's thread per statement).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.read_only(true))
            .await?;
        let stats = Arc::new(GroupCommitStats::default());
        let batcher = Arc::new(Batcher {
            pool: writer.clone(),
            state: Arc::new(Mutex::new(Batch {
                stats: stats.clone(),
                ..Batch::default()
            })),
            stats,
        });
        Ok(Db::Sqlite {
            writer,
            readers,
            batcher,
        })
    }

    /// SQLite's heap in this process, now and at its peak since the start, in bytes
    /// (`sqlite3_status64(SQLITE_STATUS_MEMORY_USED)`: page caches, prepared statements, sorts);
    /// `None` on PostgreSQL. The rest of the resident memory is the server's own, which is what
    /// the memory goal is about (docs/performance.md, "memory"). A connection's page cache alone
    /// is no measure of it: a WAL reader drops its cache whenever another connection has written.
    pub fn sqlite_heap(&self) -> Option<(u64, u64)> {
        self.sqlite_heap_status(false)
    }

    /// [`Self::sqlite_heap`], then its peak starts again from now (for a benchmark measuring one
    /// scenario's peak).
    pub fn sqlite_heap_reset_peak(&self) -> Option<(u64, u64)> {
        self.sqlite_heap_status(true)
    }

    fn sqlite_heap_status(&self, reset: bool) -> Option<(u64, u64)> {
        if !matches!(self, Db::Sqlite { .. }) {
            return None;
        }
        let (mut now, mut peak) = (0i64, 0i64);
        // SAFETY: a process-wide counter read into two locals; no connection is involved.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_status64(
                libsqlite3_sys::SQLITE_STATUS_MEMORY_USED,
                &mut now,
                &mut peak,
                i32::from(reset),
            )
        };
        (rc == libsqlite3_sys::SQLITE_OK).then_some((now.max(0) as u64, peak.max(0) as u64))
    }

    /// The SQLite group commit's counters (`None` on PostgreSQL).
    pub fn group_commit_stats(&self) -> Option<Arc<GroupCommitStats>> {
        match self {
            Db::Sqlite { batcher, .. } => Some(batcher.stats.clone()),
            Db::Postgres(_) => None,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Creates or upgrades the schema; idempotent.
    pub async fn migrate(&self) -> Result<(), AppError> {
        match self {
            Db::Sqlite { writer, .. } => sqlx::migrate!("./migrations/sqlite").run(writer).await?,
            Db::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// The pool for reads (SQLite: the reader pool).
    pub fn read(&self) -> Pool<'_> {
        match self {
            Db::Sqlite { readers, .. } => Pool::Sqlite(readers),
            Db::Postgres(p) => Pool::Pg(p),
        }
    }

    /// A plain transaction that commits on its own, bypassing group commit (for the benchmark's
    /// bare rate).
    pub async fn begin_unbatched_sqlite(
        &self,
    ) -> Result<Option<Transaction<'static, Sqlite>>, AppError> {
        match self {
            Db::Sqlite { writer, .. } => Ok(Some(writer.begin().await?)),
            Db::Postgres(_) => Ok(None),
        }
    }

    /// The pool for single-statement writes (SQLite: the one writer).
    pub fn write(&self) -> Pool<'_> {
        match self {
            Db::Sqlite { writer, .. } => Pool::Sqlite(writer),
            Db::Postgres(p) => Pool::Pg(p),
        }
    }

    pub async fn begin(&self) -> Result<Tx, AppError> {
        Ok(match self {
            Db::Sqlite { batcher, .. } => Tx::Sqlite(batcher.begin().await?),
            Db::Postgres(p) => Tx::Pg(p.begin().await?),
        })
    }

    /// A transaction for one large write (an import of many rows). On SQLite it is the physical
    /// transaction itself instead of a savepoint in the shared one: SQLite keeps the original of
    /// every page written under a savepoint in memory until it is released, which for a
    /// million-row import into a 10-million province was 8 GB. It holds the writer until it ends,
    /// as any transaction does.
    pub async fn begin_solo(&self) -> Result<Tx, AppError> {
        Ok(match self {
            Db::Sqlite { batcher, .. } => Tx::Sqlite(batcher.begin_solo().await?),
            Db::Postgres(p) => Tx::Pg(p.begin().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite {
                writer, readers, ..
            } => {
                readers.close().await;
                writer.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Table name → sorted column names, for the schema parity test.
    pub async fn schema_columns(&self) -> Result<Vec<(String, String)>, AppError> {
        let mut rows: Vec<(String, String)> = match self {
            Db::Sqlite { readers, .. } => {
                sqlx::query_as(
                    "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
                )
                .fetch_all(readers)
                .await?
            }
            Db::Postgres(p) => {
                sqlx::query_as(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
                )
                .fetch_all(p)
                .await?
            }
        };
        rows.sort();
        Ok(rows)
    }
}

impl Db {
    /// An online, consistent copy of an SQLite database into a new file (`VACUUM INTO`), taken
    /// while the server keeps serving. PostgreSQL is backed up with `pg_dump` (see README).
    pub async fn backup_to(&self, dest: &std::path::Path) -> Result<(), AppError> {
        match self {
            Db::Sqlite { writer, .. } => {
                if dest.exists() {
                    return Err(AppError::Other(format!(
                        "{} already exists",
                        dest.display()
                    )));
                }
                let path = dest
                    .to_str()
                    .ok_or_else(|| AppError::Other("backup path is not UTF-8".into()))?;
                sqlx::query("VACUUM INTO $1")
                    .bind(path)
                    .execute(writer)
                    .await?;
                Ok(())
            }
            Db::Postgres(_) => Err(AppError::Other(
                "PostgreSQL: use pg_dump --format=custom (see README, Backup and restore)".into(),
            )),
        }
    }
}
