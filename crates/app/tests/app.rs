//! Integration tests of the use cases, run on every configured backend (SQLite always; PostgreSQL
//! too when `XUEJI_TEST_DATABASE_URL` is set). One binary for the crate (DESIGN.md §5).

#[path = "app/accounts.rs"]
mod accounts;
#[path = "app/audit_chain.rs"]
mod audit_chain;
#[path = "app/changes.rs"]
mod changes;
#[path = "app/dataset.rs"]
mod dataset;
#[path = "app/dock.rs"]
mod dock;
#[path = "app/explain.rs"]
mod explain;
#[path = "app/group_commit.rs"]
mod group_commit;
#[path = "app/jurisdiction.rs"]
mod jurisdiction;
#[path = "app/login.rs"]
mod login;
#[path = "app/plans.rs"]
mod plans;
#[path = "app/policy.rs"]
mod policy;
#[path = "app/problems.rs"]
mod problems;
#[path = "app/promotion.rs"]
mod promotion;
#[path = "app/races.rs"]
mod races;
#[path = "app/records.rs"]
mod records;
#[path = "app/schema.rs"]
mod schema;
#[path = "app/transfers.rs"]
mod transfers;

use xueji_app::auth::{CurrentUser, SessionKind};
use xueji_app::paging::Page;
use xueji_app::seed::DEMO_PASSWORD;
use xueji_app::{App, AppResult, Db};
use xueji_domain::ErrorCode;

/// Signs a demo account in and returns who it is.
pub async fn user(app: &App, username: &str) -> CurrentUser {
    match app
        .login(username, DEMO_PASSWORD, "198.51.100.7", SessionKind::Api)
        .await
    {
        Ok(ok) => ok.user,
        Err(e) => panic!("login {username}: {e}"),
    }
}

/// The code of a refusal; panics when the call succeeded.
pub fn refused<T>(r: AppResult<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected a refusal, got success"),
        Err(e) => e.code(),
    }
}

/// Every row of a list in one page.
pub fn all() -> Page {
    Page {
        page: 1,
        per_page: 500,
    }
}

/// Runs one statement on the writer of either backend; returns the rows affected.
pub async fn exec(db: &Db, sql: &str) -> Result<u64, sqlx::Error> {
    xueji_app::on_pool!(db.write(), p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|r| r.rows_affected()))
}

/// One `COUNT(*)`-like scalar.
pub async fn count(db: &Db, sql: &str) -> i64 {
    xueji_app::on_pool!(db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Drops a test's PostgreSQL database when the test is done (SQLite files live in the temp dir).
pub async fn dispose(db: &Db) {
    xueji_app::testing::dispose(db).await;
}
