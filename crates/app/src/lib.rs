//! xueji's use cases over storage. Each action loads, checks permission and policy, applies the
//! domain transition, and writes the change, its audit row and its notifications in one
//! transaction.

pub mod account_admin;
pub mod accounts;
pub mod archive;
pub mod audit;
pub mod audit_trail;
pub mod auth;
pub mod calendar_admin;
pub mod changes;
pub mod clock;
pub mod db;
pub mod deadlines;
pub mod dock;
pub mod dock_node;
pub mod error;
pub mod export;
pub mod identity;
pub mod import;
pub mod notifications;
pub mod oversight;
pub mod paging;
pub mod parent;
pub mod policies;
pub mod problems;
pub mod promotion;
pub mod reference;
pub mod registration;
pub mod sanctions;
pub mod secret_key;
pub mod seed;
pub mod session_cache;
pub mod statistics;
pub mod students;
pub mod testing;
pub mod transfer_list;
pub mod transfers;

use std::sync::{Arc, RwLock};

use xueji_domain::calendar::WorkCalendar;

pub use clock::Clock;
pub use db::{Backend, Db};
pub use error::{AppError, AppResult};

/// The application: storage, clock and the working-day calendar.
#[derive(Clone)]
pub struct App {
    pub db: Db,
    pub clock: Clock,
    calendar: Arc<RwLock<Arc<WorkCalendar>>>,
    /// Account-security settings (`accounts::AccountPolicy`), shared by every clone.
    accounts: Arc<RwLock<accounts::AccountPolicy>>,
    /// The operator's key for secrets at rest (`secret_key`); `None` until set.
    secret_key: Arc<RwLock<Option<secret_key::SecretKey>>>,
    /// Live sessions for a few seconds (`session_cache`).
    sessions: Arc<session_cache::SessionCache>,
}

impl App {
    /// Wraps an open, migrated database. The calendar comes from the `holidays` table (the
    /// shipped data when the table is still empty).
    pub async fn new(db: Db, clock: Clock) -> AppResult<Self> {
        let app = Self {
            db,
            clock,
            calendar: Arc::new(RwLock::new(Arc::new(WorkCalendar::embedded()))),
            accounts: Arc::new(RwLock::new(
                accounts::AccountPolicy::from_env().map_err(AppError::Other)?,
            )),
            secret_key: Arc::new(RwLock::new(None)),
            sessions: Arc::new(session_cache::SessionCache::default()),
        };
        app.reload_calendar().await?;
        auth::warm_up();
        Ok(app)
    }

    pub fn calendar(&self) -> Arc<WorkCalendar> {
        self.calendar.read().expect("calendar lock").clone()
    }

    /// Re-reads the holiday table (after the national administrator edits it).
    pub async fn reload_calendar(&self) -> AppResult<()> {
        let rows: Vec<(chrono::NaiveDate, String, String)> = on_pool!(self.db.read(), p =>
            sqlx::query_as("SELECT day, kind, name FROM holidays ORDER BY day").fetch_all(p).await)?;
        if rows.is_empty() {
            return Ok(());
        }
        let cal = WorkCalendar::from_entries(rows.into_iter().map(|(d, k, n)| {
            let kind = if k == "workday" {
                xueji_domain::calendar::DayKind::Workday
            } else {
                xueji_domain::calendar::DayKind::Holiday
            };
            (d, kind, n)
        }));
        *self.calendar.write().expect("calendar lock") = Arc::new(cal);
        Ok(())
    }
}
