//! Live sessions held in memory for a few seconds, so that a read (看一个学生, a list) does not
//! pay two queries to learn who is asking. Every change to accounts or sessions made through
//! the application (logout, password, second factor, disabling, roles, sealing) calls
//! [`App::sessions_changed`], which drops them all at once; the short life bounds what a change
//! made outside this process (another server on the same PostgreSQL) can miss. The timeouts are
//! checked on every use, cached or not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};

use crate::App;
use crate::auth::Session;

/// How long a cached session is trusted before it is read again.
pub const SESSION_CACHE_SECONDS: i64 = 5;
/// Entries kept at most; past this the cache starts afresh.
const MAX_ENTRIES: usize = 20_000;

#[derive(Clone)]
pub(crate) struct CachedSession {
    pub session: Session,
    pub kind: &'static str,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
    epoch: u64,
}

#[derive(Default)]
pub(crate) struct SessionCache {
    epoch: AtomicU64,
    map: Mutex<HashMap<String, CachedSession>>,
}

impl SessionCache {
    /// The cached session of a token hash, if fresh and of the current epoch.
    pub(crate) fn get(
        &self,
        hash: &str,
        kind: &'static str,
        now: DateTime<Utc>,
    ) -> Option<CachedSession> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let map = self.map.lock().expect("session cache");
        let c = map.get(hash)?;
        let fresh = c.epoch == epoch
            && c.kind == kind
            && now >= c.fetched_at
            && now - c.fetched_at < Duration::seconds(SESSION_CACHE_SECONDS);
        fresh.then(|| c.clone())
    }

    /// Remembers a session read at `epoch` (taken before the read, so that a change committed
    /// meanwhile is not masked).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put(
        &self,
        hash: String,
        session: Session,
        kind: &'static str,
        created_at: DateTime<Utc>,
        last_seen_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        epoch: u64,
    ) {
        let mut map = self.map.lock().expect("session cache");
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            hash,
            CachedSession {
                session,
                kind,
                created_at,
                last_seen_at,
                expires_at,
                fetched_at: now,
                epoch,
            },
        );
    }

    /// Notes a touch of `last_seen_at` made by the caller.
    pub(crate) fn touched(&self, hash: &str, at: DateTime<Utc>) {
        if let Some(c) = self.map.lock().expect("session cache").get_mut(hash) {
            c.last_seen_at = at;
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.map.lock().expect("session cache").clear();
    }
}

impl App {
    /// Forgets every cached session: call after any change to accounts or sessions.
    pub fn sessions_changed(&self) {
        self.sessions.invalidate();
    }
}
