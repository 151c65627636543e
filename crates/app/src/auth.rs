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

use crate::accounts::AccountPolicy;
use crate::audit::{self, AuditActor, AuditEvent};
use crate::error::{AppError, AppResult};
use crate::{App, on_pool, on_tx};

/// Failed logins per account within [`FAILURE_WINDOW`] after which the next failure locks it.
pub const MAX_FAILURES: i64 = 5;
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
pub const LOCK_DURATION: Duration = Duration::minutes(15);
// Per-address throttling and the session timeouts are settings: see `accounts::AccountPolicy`.

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
            // The separated administrators (三员分立) see no student data: a school scope that
            // matches no school, behind the route gate of the web layer.
            _ if self.role.is_separated_admin() => Scope::School {
                id: 0,
                code: String::new(),
            },
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

pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash verified for unknown (and locked) users so that they cost as much as known ones. It is
/// made at first use with the same parameters as real hashes, so the work is the same.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    hash_password("xueji-dummy-password").expect("argon2 with default parameters")
});

/// Makes the dummy hash on the blocking pool ahead of the first login, so that the first unknown
/// user costs no more than a known one. Called when the application starts.
pub(crate) fn warm_up() {
    drop(tokio::task::spawn_blocking(|| {
        std::sync::LazyLock::force(&DUMMY_HASH);
    }));
}

/// Runs the password verification of an account that does not exist or may not log in now.
async fn dummy_verify(password: &str) {
    let pw = password.to_string();
    let _ = tokio::task::spawn_blocking(move || verify_password(&pw, &DUMMY_HASH)).await;
}

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
    created_at: DateTime<Utc>,
    password_changed_at: Option<DateTime<Utc>>,
    sealed_at: Option<DateTime<Utc>>,
    totp_enabled: bool,
    totp_secret: Option<String>,
    totp_last_step: Option<i64>,
    totp_exempt: bool,
    disabled_at: Option<DateTime<Utc>>,
}

const USER_SELECT: &str = "SELECT u.id, u.username, u.password_hash, u.display_name, u.role, u.school_id, \
    s.code AS school_code, s.name AS school_name, s.region_code AS school_region, u.authority_region, \
    a.name AS authority_name, u.locked_until, u.must_change_password, u.created_at, \
    u.password_changed_at, u.sealed_at, u.totp_enabled, u.totp_secret, u.totp_last_step, \
    u.totp_exempt, u.disabled_at \
    FROM users u LEFT JOIN schools s ON s.id = u.school_id \
    LEFT JOIN authorities a ON a.region_code = u.authority_region";

impl UserRow {
    /// Whether the account must enrol a TOTP second factor before anything else: its role uses
    /// one under the policy in force, it has none yet, and it is not exempt.
    fn must_enrol_totp(&self, policy: &AccountPolicy) -> bool {
        let role = Role::parse(&self.role).unwrap_or(Role::SchoolAdmin);
        policy.totp_applies(role) && !self.totp_enabled && !self.totp_exempt
    }

    /// The user as a request sees them; an expired password (rotation on) forces a change as an
    /// initial one does.
    fn into_current(self, policy: &AccountPolicy, now: DateTime<Utc>) -> CurrentUser {
        let expired =
            policy.password_expired(self.password_changed_at.unwrap_or(self.created_at), now);
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
            must_change_password: self.must_change_password || expired,
        }
    }
}

/// A successful login: the secret for the cookie or bearer header, and the user.
pub struct LoginOk {
    pub token: String,
    pub csrf_token: String,
    pub user: CurrentUser,
    /// The account must enrol a TOTP second factor before anything but `auth/*`.
    pub must_enrol_totp: bool,
}

/// A live session: its user, its CSRF token, and whether the user must enrol a second factor
/// first (the web layer's gate sends them to enrolment).
#[derive(Clone)]
pub struct Session {
    pub user: CurrentUser,
    pub csrf: String,
    pub must_enrol_totp: bool,
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
        self.login_with_totp(username, password, None, client_ip, kind)
            .await
    }

    /// [`App::login`] with the TOTP code of an enrolled account (the second call after a
    /// `totp_required` answer). A wrong code counts as a failed login.
    pub async fn login_with_totp(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
        client_ip: &str,
        kind: SessionKind,
    ) -> AppResult<LoginOk> {
        let now = self.clock.now();
        let policy = self.accounts();
        let since = now - FAILURE_WINDOW;
        let username = username.trim();
        let ip_failures: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_failures WHERE ip = $1 AND at > $2"
        ).bind(client_ip).bind(since).fetch_one(p).await)?;
        if ip_failures >= policy.max_failures_per_address {
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
            dummy_verify(password).await;
            // A known account stays locked until 15 minutes after the failure that locked it,
            // and failures while locked are not counted: replay that from the failures on file
            // so that the lock and its end time read the same.
            let recent: Vec<DateTime<Utc>> = on_pool!(self.db.read(), p => sqlx::query_scalar(
                "SELECT at FROM login_failures WHERE username = $1 AND at > $2 ORDER BY at"
            ).bind(username).bind(now - FAILURE_WINDOW - LOCK_DURATION - FAILURE_WINDOW)
                .fetch_all(p).await)?;
            if let Some(until) = virtual_lock(&recent).filter(|u| *u > now) {
                return Err(locked_error(until).into());
            }
            self.record_failure(username, client_ip, now).await?;
            let failures: i64 = on_pool!(self.db.write(), p => sqlx::query_scalar(
                "SELECT COUNT(*) FROM login_failures WHERE username = $1 AND at > $2"
            ).bind(username).bind(since).fetch_one(p).await)?;
            return Err(failure_error(failures, now).into());
        };
        if let Some(until) = row.locked_until.filter(|u| *u > now) {
            dummy_verify(password).await;
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
        // The password is right: from here the answers may say more than "wrong".
        if row.sealed_at.is_some() {
            return Err(Error::new(
                ErrorCode::AccountSealed,
                "账号超过6个月未使用，已被封存，请联系上级单位管理员解封",
            )
            .into());
        }
        if row.disabled_at.is_some() {
            return Err(Error::new(
                ErrorCode::AccountDisabled,
                "账号已被系统管理员停用，请联系系统管理员",
            )
            .into());
        }
        let role = Role::parse(&row.role).unwrap_or(Role::SchoolAdmin);
        let mut totp_step = None;
        if row.totp_enabled && policy.totp_applies(role) {
            let Some(code) = totp.map(str::trim).filter(|c| !c.is_empty()) else {
                return Err(Error::new(
                    ErrorCode::TotpRequired,
                    "请输入动态口令（身份验证器中的6位验证码）",
                )
                .at("totp")
                .into());
            };
            let secret = match row.totp_secret.as_deref() {
                Some(stored) => Some(self.open_totp_secret(row.id, stored).await?),
                None => None,
            };
            let step = secret
                .as_deref()
                .and_then(|secret| crate::accounts::totp_check(secret, &row.username, code, now))
                // A code is accepted once (RFC 6238 §5.2): a replayed step is refused.
                .filter(|step| row.totp_last_step.is_none_or(|last| *step > last));
            let Some(step) = step else {
                self.record_failure(username, client_ip, now).await?;
                return Err(
                    Error::new(ErrorCode::Unauthenticated, "动态验证码错误或已使用")
                        .at("totp")
                        .into(),
                );
            };
            totp_step = Some(step);
        }
        let token = random_secret();
        let csrf_token = random_secret();
        let must_enrol_totp = row.must_enrol_totp(&policy);
        let user = row.into_current(&policy, now);
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => {
            sqlx::query("DELETE FROM login_failures WHERE username = $1").bind(username).execute(&mut *c).await?;
            sqlx::query("UPDATE users SET last_login_at = $1, locked_until = NULL, \
                 totp_last_step = COALESCE($3, totp_last_step) WHERE id = $2")
                .bind(now).bind(user.id).bind(totp_step).execute(&mut *c).await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, kind, csrf_token, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6)",
            )
            .bind(sha256_hex(&token)).bind(user.id).bind(kind.as_str()).bind(&csrf_token)
            .bind(now).bind(now + policy.session_absolute)
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
            must_enrol_totp,
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
        Ok(self.session(token, kind).await?.map(|s| (s.user, s.csrf)))
    }

    /// [`App::authenticate`] with what the gate needs to know besides the user. A sealed or
    /// disabled account has no live session.
    pub async fn session(&self, token: &str, kind: SessionKind) -> AppResult<Option<Session>> {
        if token.len() != 64 {
            return Ok(None);
        }
        let now = self.clock.now();
        let hash = sha256_hex(token);
        let policy = self.accounts();
        if let Some(c) = self.sessions.get(&hash, kind.as_str(), now) {
            if c.expires_at <= now
                || c.created_at + policy.session_absolute <= now
                || c.last_seen_at + policy.session_idle <= now
            {
                // Read it again: the database decides, and deletes it.
                self.sessions_changed();
            } else {
                if now - c.last_seen_at > Duration::minutes(1) {
                    on_pool!(self.db.write(), p => sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                        .bind(now).bind(&hash).execute(p).await.map(|r| r.rows_affected()))?;
                    self.sessions.touched(&hash, now);
                }
                return Ok(Some(c.session));
            }
        }
        let epoch = self.sessions.epoch();
        #[derive(sqlx::FromRow)]
        struct S {
            user_id: i64,
            csrf_token: String,
            created_at: DateTime<Utc>,
            last_seen_at: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        }
        let s: Option<S> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT user_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions WHERE token_hash = $1 AND kind = $2"
        ).bind(&hash).bind(kind.as_str()).fetch_optional(p).await)?;
        let Some(mut s) = s else { return Ok(None) };
        // The timeouts in force now apply to sessions opened before a change of setting too.
        if s.expires_at <= now
            || s.created_at + policy.session_absolute <= now
            || s.last_seen_at + policy.session_idle <= now
        {
            on_pool!(self.db.write(), p => sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&hash).execute(p).await.map(|r| r.rows_affected()))?;
            return Ok(None);
        }
        // Touch at most once a minute: a write per request would serialise every read.
        if now - s.last_seen_at > Duration::minutes(1) {
            on_pool!(self.db.write(), p => sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now).bind(&hash).execute(p).await.map(|r| r.rows_affected()))?;
            s.last_seen_at = now;
        }
        let sql = format!(
            "{USER_SELECT} WHERE u.id = $1 AND u.sealed_at IS NULL AND u.disabled_at IS NULL"
        );
        let row: Option<UserRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(s.user_id).fetch_optional(p).await)?;
        let session = row.map(|r| Session {
            must_enrol_totp: r.must_enrol_totp(&policy),
            user: r.into_current(&policy, now),
            csrf: s.csrf_token,
        });
        if let Some(session) = &session {
            self.sessions.put(
                hash,
                session.clone(),
                kind.as_str(),
                s.created_at,
                s.last_seen_at,
                s.expires_at,
                now,
                epoch,
            );
        }
        Ok(session)
    }

    pub async fn user_by_id(&self, id: i64) -> AppResult<Option<CurrentUser>> {
        let sql = format!("{USER_SELECT} WHERE u.id = $1");
        let row: Option<UserRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
        let policy = self.accounts();
        let now = self.clock.now();
        Ok(row.map(|r| r.into_current(&policy, now)))
    }

    pub async fn logout(&self, token: &str) -> AppResult<()> {
        on_pool!(self.db.write(), p => sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(sha256_hex(token)).execute(p).await.map(|r| r.rows_affected()))?;
        self.sessions_changed();
        Ok(())
    }
}

/// The lock a known account would be under after these failures (oldest first): each failure
/// that is the 6th within the window locks until 15 minutes after it.
fn virtual_lock(failures: &[DateTime<Utc>]) -> Option<DateTime<Utc>> {
    let mut until = None;
    for (i, f) in failures.iter().enumerate() {
        let in_window = failures[..=i]
            .iter()
            .filter(|g| **g > *f - FAILURE_WINDOW)
            .count() as i64;
        if in_window > MAX_FAILURES {
            until = Some(*f + LOCK_DURATION);
        }
    }
    until
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
