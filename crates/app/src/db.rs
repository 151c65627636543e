//! The storage seam: one enum over the two native sqlx pools, one SQL text for both.
//!
//! SQL is written once in the dialects' common subset (`$N` placeholders, `RETURNING`,
//! `ON CONFLICT`); the [`on_pool!`] and [`on_tx!`] macros expand a body once per backend so that
//! each branch is type-checked against its own driver. No `Any` driver: it lacks date types.
//!
//! SQLite profile (DESIGN.md §2): WAL, `synchronous=FULL` by default, foreign keys on,
//! `busy_timeout` 5 s, ONE writer connection (writes queue in-process instead of fighting over
//! SQLITE_BUSY) and a pool of readers.

use std::str::FromStr;
use std::time::Duration;

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

/// A pool to run one statement on (reads go to readers, writes to the writer).
#[derive(Clone, Copy)]
pub enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Pg(&'a PgPool),
}

/// An open transaction on either backend.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Pg(Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), AppError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Pg(t) => t.commit().await?,
        }
        Ok(())
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
                let $c = &mut **t;
                $body
            }
            $crate::db::Tx::Pg(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

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
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
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
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.read_only(true))
            .await?;
        Ok(Db::Sqlite { writer, readers })
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

    /// The pool for single-statement writes (SQLite: the one writer).
    pub fn write(&self) -> Pool<'_> {
        match self {
            Db::Sqlite { writer, .. } => Pool::Sqlite(writer),
            Db::Postgres(p) => Pool::Pg(p),
        }
    }

    pub async fn begin(&self) -> Result<Tx, AppError> {
        Ok(match self {
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin().await?),
            Db::Postgres(p) => Tx::Pg(p.begin().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { writer, readers } => {
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
                    return Err(AppError::Other(format!("{} already exists", dest.display())));
                }
                let path = dest.to_str().ok_or_else(|| AppError::Other("backup path is not UTF-8".into()))?;
                sqlx::query("VACUUM INTO $1").bind(path).execute(writer).await?;
                Ok(())
            }
            Db::Postgres(_) => Err(AppError::Other(
                "PostgreSQL: use pg_dump --format=custom (see README, Backup and restore)".into(),
            )),
        }
    }
}
