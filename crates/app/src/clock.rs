//! Time source. Tests and the benchmark set it; production reads the system clock.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, NaiveDate, SubsecRound, Utc};

#[derive(Clone, Default)]
pub struct Clock {
    fixed: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stays at `at` until moved with [`Clock::set`].
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self {
            fixed: Some(Arc::new(Mutex::new(at))),
        }
    }

    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(f) = &self.fixed {
            *f.lock().expect("clock") = at;
        }
    }

    /// Now, truncated to microseconds so that values round-trip through both databases unchanged
    /// (the audit chain hashes them).
    pub fn now(&self) -> DateTime<Utc> {
        let t = match &self.fixed {
            Some(f) => *f.lock().expect("clock"),
            None => Utc::now(),
        };
        t.trunc_subsecs(6)
    }

    /// Today's date in China (UTC+8): deadlines count Beijing working days.
    pub fn today(&self) -> NaiveDate {
        let cst = FixedOffset::east_opt(8 * 3600).expect("offset");
        self.now().with_timezone(&cst).date_naive()
    }
}
