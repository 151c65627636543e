//! Accounts, login, sessions and bearer tokens, throttling, and the caller's jurisdiction.
//!
//! Passwords are argon2id (hashing runs on the blocking pool). An unknown user costs the same
//! verification as a known one. Session and API secrets are random 256-bit values; only their
//! SHA-256 is stored, so a leaked database holds no usable session.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::RegionCode;
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::error::{AppError, AppResult};
use crate::{App, on_pool, on_tx};

/// Failed logins per account within [`FAILURE_WINDOW`] after which the next failure locks it.
pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
pub const LOCK_DURATION: Duration = Duration::minutes(15);
/// Failed logins per client address within the window before it is refused.
pub const MAX_FAILURES_PER_ADDRESS: i64 = 50;
pub const SESSION_ABSOLUTE: Duration = Duration::hours(12);
pub const SESSION_IDLE: Duration = Duration::hours(2);

/// A session kind: the web UI's cookie or an API bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Web,
    Api,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Web => "web",
            SessionKind::Api => "api",
        }
    }
}

/// The signed-in user of a request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub org: OrgRef,
    /// Name of the organisation (school or authority) for the page header.
    pub org_name: String,
    #[serde(skip)]
    pub school_id: Option<i64>,
    /// The region of the user's organisation (a school's region, an authority's region).
    pub region_code: Option<String>,
    pub must_change_password: bool,
}

/// What a user may see: the whole nation, a region subtree, or one school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    National,
    Region(RegionCode),
    School { id: i64, code: String },
}

impl CurrentUser {
    pub fn scope(&self) -> Scope {
        match (&self.org, self.school_id) {
            (OrgRef::School(code), Some(id)) => Scope::School {
                id,
                code: code.clone(),
            },
            (OrgRef::Authority(r), _) => {
                Scope::Region(RegionCode::parse(r).expect("authority region codes are valid"))
            }
            _ => Scope::National,
        }
    }

    pub fn actor(&self) -> xueji_domain::access::Actor {
        xueji_domain::access::Actor {
            user_id: self.id,
            role: self.role,
            org: self.org.clone(),
        }
    }

    pub fn audit_actor(&self) -> AuditActor {
        let org = match &self.org {
            OrgRef::School(c) => format!("school:{c}"),
            OrgRef::Authority(r) => format!("authority:{r}"),
            OrgRef::National => "national".into(),
        };
        AuditActor {
            user_id: Some(self.id),
            name: self.username.clone(),
            org,
        }
    }
}

impl Scope {
    /// The `[lo, hi)` region-code range this scope covers, intersected with an optional filter
    /// region; `None` when the two do not overlap.
    pub fn region_range(&self, filter: Option<&RegionCode>) -> Option<(String, String)> {
        let own = match self {
            Scope::Region(r) => Some(r.subtree_range()),
            _ => None,
        };
        let filt = filter.map(|f| f.subtree_range());
        match (own, filt) {
            (None, None) => Some(("000000".into(), "999999".into())),
            (Some(r), None) | (None, Some(r)) => Some(r),
            (Some(a), Some(b)) => {
                let lo = a.0.clone().max(b.0.clone());
                let hi = a.1.clone().min(b.1.clone());
                (lo < hi).then_some((lo, hi))
            }
        }
    }

    /// Whether a school (by id and region) lies within this scope.
    pub fn covers_school(&self, school_id: i64, region_code: &str) -> bool {
        match self {
            Scope::National => true,
            Scope::Region(r) => r.contains(region_code),
            Scope::School { id, .. } => *id == school_id,
        }
    }
}

pub fn hash_password(password: &str) -> AppResult<String> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| AppError::Other(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Other(format!("argon2: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fixed hash verified for unknown users so that they take as long as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZU5mN2V0h3Kq2aXH3c3b0eI3dXbq7ZBzqg6Ml5u0qQk";

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    display_name: String,
    role: String,
    school_id: Option<i64>,
    school_code: Option<String>,
    school_name: Option<String>,
    school_region: Option<String>,
    authority_region: Option<String>,
    authority_name: Option<String>,
    locked_until: Option<DateTime<Utc>>,
    must_change_password: bool,
}

const USER_SELECT: &str = "SELECT u.id, u.username, u.password_hash, u.display_name, u.role, u.school_id, \
    s.code AS school_code, s.name AS school_name, s.region_code AS school_region, u.authority_region, \
    a.name AS authority_name, u.locked_until, u.must_change_password \
    FROM users u LEFT JOIN schools s ON s.id = u.school_id \
    LEFT JOIN authorities a ON a.region_code = u.authority_region";

impl UserRow {
    fn into_current(self) -> CurrentUser {
        let role = Role::parse(&self.role).unwrap_or(Role::SchoolAdmin);
        let (org, org_name, region_code) = match (&self.school_code, &self.authority_region) {
            (Some(code), _) => (
                OrgRef::School(code.clone()),
                self.school_name.clone().unwrap_or_default(),
                self.school_region.clone(),
            ),
            (None, Some(r)) => (
                OrgRef::Authority(r.clone()),
                self.authority_name.clone().unwrap_or_default(),
                Some(r.clone()),
            ),
            (None, None) => (OrgRef::National, "教育部".to_string(), None),
        };
        CurrentUser {
            id: self.id,
            username: self.username,
            display_name: self.display_name,
            role,
            org,
            org_name,
            school_id: self.school_id,
            region_code,
            must_change_password: self.must_change_password,
        }
    }
}

/// A successful login: the secret for the cookie or bearer header, and the user.
pub struct LoginOk {
    pub token: String,
    pub csrf_token: String,
    pub user: CurrentUser,
}

impl App {
    /// Checks a password, applying per-account lockout and per-address throttling, and opens a
    /// session. Every refusal says only what the user may know.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client_ip: &str,
        kind: SessionKind,
    ) -> AppResult<LoginOk> {
        let now = self.clock.now();
        let since = now - FAILURE_WINDOW;
        let username = username.trim();
        let ip_failures: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_failures WHERE ip = $1 AND at > $2"
        ).bind(client_ip).bind(since).fetch_one(p).await)?;
        if ip_failures >= MAX_FAILURES_PER_ADDRESS {
            return Err(Error::new(
                ErrorCode::TooManyRequests,
                "登录失败次数过多，请15分钟后再试",
            )
            .into());
        }
        let sql = format!("{USER_SELECT} WHERE u.username = $1");
        let row: Option<UserRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(username).fetch_optional(p).await)?;
        let Some(row) = row else {
            // An unknown account gets exactly what a known one gets (same work, same counting,
            // same messages), so that answers do not reveal which accounts exist.
            let pw = password.to_string();
            let _ = tokio::task::spawn_blocking(move || verify_password(&pw, DUMMY_HASH)).await;
            self.record_failure(username, client_ip, now).await?;
            let failures: i64 = on_pool!(self.db.write(), p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM login_failures WHERE username = $1 AND at > $2"
            ).bind(username).bind(since).fetch_one(p).await)?;
            return Err(failure_error(failures, now).into());
        };
        if let Some(until) = row.locked_until.filter(|u| *u > now) {
            return Err(locked_error(until).into());
        }
        let (pw, phc) = (password.to_string(), row.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &phc))
            .await
            .map_err(|e| AppError::Other(e.to_string()))?;
        if !ok {
            self.record_failure(username, client_ip, now).await?;
            let failures: i64 = on_pool!(self.db.write(), p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM login_failures WHERE username = $1 AND at > $2"
            ).bind(username).bind(since).fetch_one(p).await)?;
            if failures > MAX_FAILURES {
                let until = now + LOCK_DURATION;
                on_pool!(self.db.write(), p => sqlx::query("UPDATE users SET locked_until = $1 WHERE id = $2")
                    .bind(until).bind(row.id).execute(p).await.map(|r| r.rows_affected()))?;
            }
            return Err(failure_error(failures, now).into());
        }
        let token = random_secret();
        let csrf_token = random_secret();
        let user = row.into_current();
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => {
            sqlx::query("DELETE FROM login_failures WHERE username = $1").bind(username).execute(&mut *c).await?;
            sqlx::query("UPDATE users SET last_login_at = $1, locked_until = NULL WHERE id = $2")
                .bind(now).bind(user.id).execute(&mut *c).await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, kind, csrf_token, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6)",
            )
            .bind(sha256_hex(&token)).bind(user.id).bind(kind.as_str()).bind(&csrf_token)
            .bind(now).bind(now + SESSION_ABSOLUTE)
            .execute(&mut *c).await.map(|r| r.rows_affected())?
        });
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "login",
                entity_type: "user",
                entity_id: user.id.to_string(),
                before: None,
                after: Some(serde_json::json!({ "kind": kind.as_str() })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(LoginOk {
            token,
            csrf_token,
            user,
        })
    }

    async fn record_failure(&self, username: &str, ip: &str, now: DateTime<Utc>) -> AppResult<()> {
        on_pool!(self.db.write(), p => sqlx::query("INSERT INTO login_failures (username, ip, at) VALUES ($1, $2, $3)")
            .bind(username).bind(ip).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The user and CSRF token of a live session, or `None` (expired, idle, unknown, logged out).
    pub async fn authenticate(
        &self,
        token: &str,
        kind: SessionKind,
    ) -> AppResult<Option<(CurrentUser, String)>> {
        if token.len() != 64 {
            return Ok(None);
        }
        let now = self.clock.now();
        let hash = sha256_hex(token);
        #[derive(sqlx::FromRow)]
        struct S {
            user_id: i64,
            csrf_token: String,
            last_seen_at: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        }
        let s: Option<S> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT user_id, csrf_token, last_seen_at, expires_at FROM sessions WHERE token_hash = $1 AND kind = $2"
        ).bind(&hash).bind(kind.as_str()).fetch_optional(p).await)?;
        let Some(s) = s else { return Ok(None) };
        if s.expires_at <= now || s.last_seen_at + SESSION_IDLE <= now {
            on_pool!(self.db.write(), p => sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&hash).execute(p).await.map(|r| r.rows_affected()))?;
            return Ok(None);
        }
        // Touch at most once a minute: a write per request would serialise every read.
        if now - s.last_seen_at > Duration::minutes(1) {
            on_pool!(self.db.write(), p => sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now).bind(&hash).execute(p).await.map(|r| r.rows_affected()))?;
        }
        let user = self.user_by_id(s.user_id).await?;
        Ok(user.map(|u| (u, s.csrf_token)))
    }

    pub async fn user_by_id(&self, id: i64) -> AppResult<Option<CurrentUser>> {
        let sql = format!("{USER_SELECT} WHERE u.id = $1");
        let row: Option<UserRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
        Ok(row.map(UserRow::into_current))
    }

    pub async fn logout(&self, token: &str) -> AppResult<()> {
        on_pool!(self.db.write(), p => sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(sha256_hex(token)).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}

/// The answer to a wrong password, known account or not: how many tries are left, or the lock.
fn failure_error(failures: i64, now: DateTime<Utc>) -> Error {
    if failures > MAX_FAILURES {
        return locked_error(now + LOCK_DURATION);
    }
    let left = MAX_FAILURES + 1 - failures;
    Error::new(
        ErrorCode::Unauthenticated,
        format!("用户名或密码错误（再错{left}次账号将锁定15分钟）"),
    )
}

fn locked_error(until: DateTime<Utc>) -> Error {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    Error::new(
        ErrorCode::AccountLocked,
        format!(
            "密码连续错误次数过多，账号已锁定，请于{}后再试",
            until.with_timezone(&cst).format("%H:%M")
        ),
    )
}
