//! Account security: the settings (session timeouts, address throttling, password rotation, TOTP
//! policy), password changes under the policy, logout everywhere, TOTP enrolment, sealing of
//! unused accounts (2025 Measures) and unsealing, and accounts created by the system
//! administrator with an initial password that must be changed.
//!
//! Every change is written with its audit row in one transaction. Passwords, their hashes and TOTP
//! secrets never go into the audit trail. TOTP secrets are stored encrypted under the operator's
//! key (`secret_key`).

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use xueji_domain::access::Role;
use xueji_domain::password;
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::{CurrentUser, Scope, hash_password, sha256_hex, verify_password};
use crate::error::{AppError, AppResult};
use crate::secret_key::{self, SecretKey};
use crate::{App, on_pool, on_tx};

/// Accounts unused for this long are sealed (封存) by [`App::seal_inactive_accounts`].
pub const SEAL_AFTER: Duration = Duration::days(180);

/// Which roles must use the TOTP second factor (`XUEJI_TOTP_REQUIRED`, `--totp-required`). An
/// account of such a role that has not enrolled is sent to enrolment before anything else,
/// unless it is exempt (`users.totp_exempt`: the demo accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpRequired {
    /// Authority (教育行政部门), national (教育部) and the separated administrators' accounts
    /// (the default).
    Authority,
    /// Every account.
    All,
    /// Nobody: the second factor is switched off.
    None,
}

impl TotpRequired {
    /// `authority`, `all` or `none`.
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.trim() {
            "" | "authority" => Ok(Self::Authority),
            "all" => Ok(Self::All),
            "none" => Ok(Self::None),
            other => Err(format!(
                "the TOTP setting must be authority, all or none, not {other:?}"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authority => "authority",
            Self::All => "all",
            Self::None => "none",
        }
    }
}

/// The account-security settings, read from the environment at start (README: "账号安全").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPolicy {
    /// `XUEJI_SESSION_IDLE_MINUTES` (default 30).
    pub session_idle: Duration,
    /// `XUEJI_SESSION_ABSOLUTE_HOURS` (default 12).
    pub session_absolute: Duration,
    /// `XUEJI_LOGIN_MAX_FAILURES_PER_ADDRESS` within 15 minutes (default 20).
    pub max_failures_per_address: i64,
    /// `XUEJI_PASSWORD_MAX_AGE_DAYS` (default off).
    pub password_max_age: Option<Duration>,
    /// `XUEJI_TOTP_REQUIRED` = `authority` (default) | `all` | `none`.
    pub totp_required: TotpRequired,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            session_idle: Duration::minutes(30),
            session_absolute: Duration::hours(12),
            max_failures_per_address: 20,
            password_max_age: None,
            totp_required: TotpRequired::Authority,
        }
    }
}

fn env_number(name: &str) -> Result<Option<i64>, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("{name} must be a positive whole number, not {v:?}")),
        _ => Ok(None),
    }
}

impl AccountPolicy {
    /// The defaults, overridden by the `XUEJI_*` variables that are set; a malformed value is an
    /// error (the server refuses to start rather than run with a setting nobody chose).
    pub fn from_env() -> Result<Self, String> {
        let mut p = Self::default();
        if let Some(m) = env_number("XUEJI_SESSION_IDLE_MINUTES")? {
            p.session_idle = Duration::minutes(m);
        }
        if let Some(h) = env_number("XUEJI_SESSION_ABSOLUTE_HOURS")? {
            p.session_absolute = Duration::hours(h);
        }
        if let Some(n) = env_number("XUEJI_LOGIN_MAX_FAILURES_PER_ADDRESS")? {
            p.max_failures_per_address = n;
        }
        if let Some(d) = env_number("XUEJI_PASSWORD_MAX_AGE_DAYS")? {
            p.password_max_age = Some(Duration::days(d));
        }
        if let Ok(v) = std::env::var("XUEJI_TOTP_REQUIRED") {
            p.totp_required =
                TotpRequired::parse(&v).map_err(|e| format!("XUEJI_TOTP_REQUIRED: {e}"))?;
        }
        Ok(p)
    }

    /// Whether a password set at `changed_at` has to be changed now (rotation on).
    pub fn password_expired(&self, changed_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.password_max_age
            .is_some_and(|age| changed_at + age <= now)
    }

    /// Whether the role uses the second factor: it may enrol, must unless exempt, and once
    /// enrolled its login asks for the code.
    pub fn totp_applies(&self, role: Role) -> bool {
        match self.totp_required {
            TotpRequired::None => false,
            TotpRequired::All => true,
            TotpRequired::Authority => !matches!(role, Role::SchoolAdmin | Role::SchoolReviewer),
        }
    }
}

const TOTP_ISSUER: &str = "xueji";

fn totp_of(secret_b32: &str, username: &str) -> Option<totp_rs::Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).ok()?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_issuer(Some(TOTP_ISSUER))
        .with_account_name(username.replace(':', "_"))
        .build()
        .ok()
}

/// The time step a TOTP code is valid for at `now` (±1 step of clock drift), if it is valid.
pub fn totp_check(secret_b32: &str, username: &str, code: &str, now: DateTime<Utc>) -> Option<i64> {
    let t = totp_of(secret_b32, username)?;
    let secs = u64::try_from(now.timestamp()).ok()?;
    t.check(code.trim(), secs)
        .and_then(|s| i64::try_from(s).ok())
}

/// The current code of a secret (for tests and for the enrolment page's self-check).
pub fn totp_code(secret_b32: &str, username: &str, now: DateTime<Utc>) -> Option<String> {
    let t = totp_of(secret_b32, username)?;
    let secs = u64::try_from(now.timestamp()).ok()?;
    Some(t.generate(secs).to_string())
}

/// A TOTP secret waiting for its first code.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// The secret in base32, to type into an authenticator app by hand.
    pub secret: String,
    /// `otpauth://totp/…`, to scan as a QR code or open on the phone.
    pub otpauth_uri: String,
}

/// An account the system administrator creates.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    /// `school_admin`, `school_reviewer`, `authority_admin` or `national_admin`.
    pub role: String,
    /// The school's 学校标识码 (school roles) or the authority's region code (authority role).
    #[serde(default)]
    pub org_code: Option<String>,
    /// The initial password; the user must change it at first login.
    pub initial_password: String,
}

/// One account as the administrators see it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AccountInfo {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub must_change_password: bool,
    pub sealed: bool,
    pub totp_enabled: bool,
}

fn other(e: impl std::fmt::Display) -> AppError {
    AppError::Other(e.to_string())
}

async fn verify_blocking(password: &str, phc: &str) -> AppResult<bool> {
    let (pw, phc) = (password.to_string(), phc.to_string());
    tokio::task::spawn_blocking(move || verify_password(&pw, &phc))
        .await
        .map_err(other)
}

async fn hash_blocking(password: &str) -> AppResult<String> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(other)?
}

#[derive(sqlx::FromRow)]
struct Target {
    id: i64,
    username: String,
    sealed_at: Option<DateTime<Utc>>,
    school_id: Option<i64>,
    school_region: Option<String>,
    authority_region: Option<String>,
}

/// The associated data binding an encrypted TOTP secret to its account.
fn totp_context(user_id: i64) -> String {
    format!("xueji totp user {user_id}")
}

fn no_key() -> Error {
    Error::forbidden(
        "服务器未配置密钥（XUEJI_SECRET_KEY 或 XUEJI_SECRET_KEY_FILE），暂不能绑定动态口令，请联系运维人员",
    )
}

impl App {
    /// Sets the operator's key for secrets at rest (the server reads it at start:
    /// `SecretKey::from_env`).
    pub fn set_secret_key(&self, key: SecretKey) {
        *self.secret_key.write().expect("secret key lock") = Some(key);
    }

    pub fn has_secret_key(&self) -> bool {
        self.secret_key.read().expect("secret key lock").is_some()
    }

    fn key(&self) -> Option<SecretKey> {
        self.secret_key.read().expect("secret key lock").clone()
    }

    /// A TOTP secret as stored: encrypted under the key, bound to the account.
    fn seal_totp_secret(&self, user_id: i64, secret: &str) -> AppResult<String> {
        let key = self.key().ok_or_else(no_key)?;
        Ok(key.seal(secret, &totp_context(user_id)))
    }

    /// The TOTP secret of a stored value. A plaintext value from before encryption is used as
    /// it is and, when a key is set, stored encrypted from now on.
    pub(crate) async fn open_totp_secret(&self, user_id: i64, stored: &str) -> AppResult<String> {
        if !secret_key::is_sealed(stored) {
            if let Some(key) = self.key() {
                let sealed = key.seal(stored, &totp_context(user_id));
                on_pool!(self.db.write(), p => sqlx::query(
                    "UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3"
                ).bind(&sealed).bind(user_id).bind(stored).execute(p).await.map(|r| r.rows_affected()))?;
            }
            return Ok(stored.to_string());
        }
        let Some(key) = self.key() else {
            return Err(other(
                "TOTP secrets are encrypted but no secret key is configured (XUEJI_SECRET_KEY, XUEJI_SECRET_KEY_FILE)",
            ));
        };
        key.open(stored, &totp_context(user_id)).ok_or_else(|| {
            other(format!(
                "the TOTP secret of user {user_id} does not open with the configured key (another key?)"
            ))
        })
    }

    /// Encrypts every TOTP secret still stored in plaintext (from before encryption). Run at
    /// start once the key is set; returns how many. Without a key: nothing.
    pub async fn encrypt_plaintext_secrets(&self) -> AppResult<u64> {
        let Some(key) = self.key() else { return Ok(0) };
        let rows: Vec<(i64, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE 'enc1:%'"
        ).fetch_all(p).await)?;
        let mut n = 0;
        for (id, plain) in rows {
            let sealed = key.seal(&plain, &totp_context(id));
            n += on_pool!(self.db.write(), p => sqlx::query(
                "UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3"
            ).bind(&sealed).bind(id).bind(&plain).execute(p).await.map(|r| r.rows_affected()))?;
        }
        Ok(n)
    }

    /// Whether the caller must enrol a TOTP second factor before anything else.
    pub async fn totp_enrolment_due(&self, user: &CurrentUser) -> AppResult<bool> {
        let (enabled, exempt): (bool, bool) = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT totp_enabled, totp_exempt FROM users WHERE id = $1"
        ).bind(user.id).fetch_one(p).await)?;
        Ok(self.accounts().totp_applies(user.role) && !enabled && !exempt)
    }

    /// An enrolment begun and not yet confirmed (the secret to show again), if any.
    pub async fn totp_pending(&self, user: &CurrentUser) -> AppResult<Option<TotpEnrolment>> {
        let (secret, enabled): (Option<String>, bool) = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT totp_secret, totp_enabled FROM users WHERE id = $1"
        ).bind(user.id).fetch_one(p).await)?;
        let Some(stored) = secret.filter(|_| !enabled) else {
            return Ok(None);
        };
        let secret = self.open_totp_secret(user.id, &stored).await?;
        let uri = totp_of(&secret, &user.username)
            .ok_or_else(|| other("totp"))?
            .to_url()
            .map_err(other)?;
        Ok(Some(TotpEnrolment {
            secret,
            otpauth_uri: uri,
        }))
    }

    /// The account-security settings in force.
    pub fn accounts(&self) -> AccountPolicy {
        self.accounts.read().expect("account policy lock").clone()
    }

    /// Replaces the settings (tests; the server reads them from the environment at start).
    pub fn set_accounts(&self, p: AccountPolicy) {
        *self.accounts.write().expect("account policy lock") = p;
        self.sessions_changed();
    }

    /// Changes the caller's own password: the old one must be right, the new one must pass the
    /// policy and differ from the last five. Ends the user's other sessions (`keep_token` is the
    /// session making the change, which stays signed in).
    pub async fn change_password(
        &self,
        user: &CurrentUser,
        old: &str,
        new: &str,
        keep_token: Option<&str>,
    ) -> AppResult<()> {
        let now = self.clock.now();
        let current: String = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT password_hash FROM users WHERE id = $1"
        ).bind(user.id).fetch_one(p).await)?;
        if !verify_blocking(old, &current).await? {
            return Err(Error::validation("old", "原密码不正确").into());
        }
        password::check(&user.username, new)?;
        // The current password and the four before it: the last five.
        let history: Vec<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
        ).bind(user.id).bind(password::HISTORY as i64 - 1).fetch_all(p).await)?;
        for h in std::iter::once(&current).chain(history.iter()) {
            if verify_blocking(new, h).await? {
                return Err(password::reused().into());
            }
        }
        let hash = hash_blocking(new).await?;
        let keep = keep_token.map(sha256_hex).unwrap_or_default();
        let mut tx = self.db.begin().await?;
        let ended = on_tx!(&mut tx, c => {
            sqlx::query("INSERT INTO password_history (user_id, password_hash, created_at) VALUES ($1, $2, $3)")
                .bind(user.id).bind(&current).bind(now).execute(&mut *c).await?;
            sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2, must_change_password = FALSE WHERE id = $3")
                .bind(&hash).bind(now).bind(user.id).execute(&mut *c).await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
                .bind(user.id).bind(&keep).execute(&mut *c).await.map(|r| r.rows_affected())?
        });
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "password_change",
                entity_type: "user",
                entity_id: user.id.to_string(),
                before: None,
                after: Some(serde_json::json!({ "other_sessions_ended": ended })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(())
    }

    /// 退出所有登录: ends every session and token of the user (this one included).
    pub async fn logout_everywhere(&self, user: &CurrentUser) -> AppResult<u64> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "logout_all",
                entity_type: "user",
                entity_id: user.id.to_string(),
                before: None,
                after: Some(serde_json::json!({ "sessions_ended": n })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(n)
    }

    /// Whether the caller has a confirmed TOTP second factor.
    pub async fn totp_enabled(&self, user: &CurrentUser) -> AppResult<bool> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT totp_enabled FROM users WHERE id = $1"
        ).bind(user.id).fetch_one(p).await)?)
    }

    /// Starts (or restarts) TOTP enrolment: a new secret, not yet required until confirmed with
    /// a code by [`App::totp_confirm`]. An enrolled account cannot start over (that would drop
    /// the second factor without one).
    pub async fn totp_begin(&self, user: &CurrentUser) -> AppResult<TotpEnrolment> {
        if !self.accounts().totp_applies(user.role) {
            return Err(Error::forbidden("当前安全策略下本角色不使用动态口令").into());
        }
        if self.totp_enabled(user).await? {
            return Err(Error::new(ErrorCode::Conflict, "已绑定动态口令").into());
        }
        if !self.has_secret_key() {
            return Err(no_key().into());
        }
        let mut bytes = [0u8; 20];
        rand::rng().fill_bytes(&mut bytes);
        let secret = totp_rs::Secret::from(bytes.to_vec()).to_base32();
        let uri = totp_of(&secret, &user.username)
            .ok_or_else(|| other("totp"))?
            .to_url()
            .map_err(other)?;
        let stored = self.seal_totp_secret(user.id, &secret)?;
        on_pool!(self.db.write(), p => sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_enabled = FALSE WHERE id = $2"
        ).bind(&stored).bind(user.id).execute(p).await.map(|r| r.rows_affected()))?;
        self.sessions_changed();
        Ok(TotpEnrolment {
            secret,
            otpauth_uri: uri,
        })
    }

    /// Confirms enrolment with a code from the authenticator; from then on login asks for one.
    pub async fn totp_confirm(&self, user: &CurrentUser, code: &str) -> AppResult<()> {
        let now = self.clock.now();
        let (secret, enabled): (Option<String>, bool) = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT totp_secret, totp_enabled FROM users WHERE id = $1"
        ).bind(user.id).fetch_one(p).await)?;
        if enabled {
            return Err(Error::new(ErrorCode::Conflict, "已绑定动态口令").into());
        }
        let Some(stored) = secret else {
            return Err(Error::validation("code", "请先生成动态口令密钥").into());
        };
        let secret = self.open_totp_secret(user.id, &stored).await?;
        let Some(step) = totp_check(&secret, &user.username, code, now) else {
            return Err(Error::validation("code", "验证码不正确，请核对手机时间后重试").into());
        };
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE users SET totp_enabled = TRUE, totp_last_step = $1 WHERE id = $2"
        ).bind(step).bind(user.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "totp_enrol",
                entity_type: "user",
                entity_id: user.id.to_string(),
                before: None,
                after: None,
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(())
    }

    /// Seals (封存) every account unused for [`SEAL_AFTER`]: not signed in (nor created or
    /// unsealed) since. Their sessions end. One audit row per account. Returns how many.
    pub async fn seal_inactive_accounts(&self) -> AppResult<u64> {
        let now = self.clock.now();
        let cutoff = now - SEAL_AFTER;
        let ids: Vec<(i64, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, username FROM users WHERE sealed_at IS NULL \
             AND COALESCE(last_login_at, created_at) < $1 \
             AND (unsealed_at IS NULL OR unsealed_at < $1) ORDER BY id"
        ).bind(cutoff).fetch_all(p).await)?;
        let mut sealed = 0;
        for chunk in ids.chunks(500) {
            let mut tx = self.db.begin().await?;
            for (id, username) in chunk {
                let n = on_tx!(&mut tx, c => {
                    sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *c).await?;
                    sqlx::query("UPDATE users SET sealed_at = $1 WHERE id = $2 AND sealed_at IS NULL")
                        .bind(now).bind(id).execute(&mut *c).await.map(|r| r.rows_affected())?
                });
                if n == 0 {
                    continue;
                }
                sealed += n;
                audit::record(
                    &mut tx,
                    now,
                    &AuditActor::system("seal"),
                    AuditEvent {
                        action: "account_seal",
                        entity_type: "user",
                        entity_id: id.to_string(),
                        before: None,
                        after: Some(serde_json::json!({ "username": username })),
                    },
                    None,
                )
                .await?;
            }
            tx.commit().await?;
            self.sessions_changed();
        }
        Ok(sealed)
    }

    async fn target(&self, username: &str) -> AppResult<Option<Target>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT u.id, u.username, u.sealed_at, u.school_id, s.region_code AS school_region, \
             u.authority_region FROM users u LEFT JOIN schools s ON s.id = u.school_id WHERE u.username = $1"
        ).bind(username.trim()).fetch_optional(p).await)?)
    }

    /// Unseals an account. The security administrator may unseal any account but their own; an
    /// authority's administrator the accounts of the schools and lower authorities in its region;
    /// the national administrator every school and authority account. Others see `not_found`.
    pub async fn unseal_account(&self, actor: &CurrentUser, username: &str) -> AppResult<()> {
        let now = self.clock.now();
        let t = self.target(username).await?;
        let Some(t) = t.filter(|t| may_unseal(actor, t)) else {
            return Err(Error::not_found("账号").into());
        };
        if t.sealed_at.is_none() {
            return Err(Error::new(ErrorCode::Conflict, "该账号未被封存").into());
        }
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE users SET sealed_at = NULL, unsealed_at = $1, locked_until = NULL WHERE id = $2"
        ).bind(now).bind(t.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        audit::record(
            &mut tx,
            now,
            &actor.audit_actor(),
            AuditEvent {
                action: "account_unseal",
                entity_type: "user",
                entity_id: t.id.to_string(),
                before: Some(serde_json::json!({ "sealed_at": t.sealed_at })),
                after: Some(serde_json::json!({ "username": t.username })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(())
    }

    /// Removes an account's second factor (a lost phone): the security administrator only. The
    /// user may enrol again; until then the password alone signs in.
    pub async fn reset_totp(&self, actor: &CurrentUser, username: &str) -> AppResult<()> {
        if actor.role != Role::SecurityAdmin {
            return Err(Error::forbidden("只有安全管理员可以重置动态口令").into());
        }
        let now = self.clock.now();
        let Some(t) = self.target(username).await? else {
            return Err(Error::not_found("账号").into());
        };
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_enabled = FALSE, totp_last_step = NULL WHERE id = $1"
        ).bind(t.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        audit::record(
            &mut tx,
            now,
            &actor.audit_actor(),
            AuditEvent {
                action: "totp_reset",
                entity_type: "user",
                entity_id: t.id.to_string(),
                before: None,
                after: Some(serde_json::json!({ "username": t.username })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(())
    }

    /// Exempts an account from the required TOTP second factor, or ends its exemption (a
    /// service account whose scripts cannot give a code; the demo accounts are exempt from the
    /// start): the security administrator only, never for their own account. An exempt account
    /// that has enrolled still gives its code.
    pub async fn set_totp_exempt(
        &self,
        actor: &CurrentUser,
        username: &str,
        exempt: bool,
    ) -> AppResult<()> {
        if actor.role != Role::SecurityAdmin {
            return Err(Error::forbidden("只有安全管理员可以设置动态口令豁免").into());
        }
        let Some(t) = self.target(username).await? else {
            return Err(Error::not_found("账号").into());
        };
        if t.id == actor.id {
            return Err(Error::forbidden("不能设置本人账号的动态口令豁免").into());
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => sqlx::query("UPDATE users SET totp_exempt = $1 WHERE id = $2")
            .bind(exempt).bind(t.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        audit::record(
            &mut tx,
            now,
            &actor.audit_actor(),
            AuditEvent {
                action: "totp_exempt",
                entity_type: "user",
                entity_id: t.id.to_string(),
                before: None,
                after: Some(serde_json::json!({ "username": t.username, "exempt": exempt })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(())
    }

    /// The system administrator creates an account with an initial password; the user must
    /// change it before doing anything else.
    pub async fn create_account(
        &self,
        actor: &CurrentUser,
        a: NewAccount,
    ) -> AppResult<AccountInfo> {
        if actor.role != Role::SystemAdmin {
            return Err(Error::forbidden("只有系统管理员可以创建账号").into());
        }
        let now = self.clock.now();
        let username = a.username.trim().to_string();
        if username.is_empty()
            || username.chars().count() > 64
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::validation(
                "username",
                "用户名由字母、数字、-、_、. 组成，不超过64个字符",
            )
            .into());
        }
        let display_name = a.display_name.trim().to_string();
        if display_name.is_empty() || display_name.chars().count() > 64 {
            return Err(Error::validation("display_name", "请填写姓名（不超过64个字符）").into());
        }
        let (role, school_id, authority_region) =
            self.role_and_org(&a.role, a.org_code.as_deref()).await?;
        password::check(&username, &a.initial_password).map_err(|e| Error {
            field: Some("initial_password"),
            ..e
        })?;
        let hash = hash_blocking(&a.initial_password).await?;
        let mut tx = self.db.begin().await?;
        let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
            "INSERT INTO users (username, password_hash, display_name, role, school_id, authority_region, \
             must_change_password, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7) ON CONFLICT (username) DO NOTHING RETURNING id"
        ).bind(&username).bind(&hash).bind(&display_name).bind(role.as_str()).bind(school_id)
            .bind(&authority_region).bind(now).fetch_optional(&mut *c).await)?
        .ok_or_else(|| Error::new(ErrorCode::Conflict, "用户名已被使用").at("username"))?;
        audit::record(
            &mut tx,
            now,
            &actor.audit_actor(),
            AuditEvent {
                action: "account_create",
                entity_type: "user",
                entity_id: id.to_string(),
                before: None,
                after: Some(serde_json::json!({
                    "username": username, "role": role.as_str(),
                    "school_id": school_id, "authority_region": authority_region,
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(AccountInfo {
            id,
            username,
            display_name,
            role: role.as_str().into(),
            must_change_password: true,
            sealed: false,
            totp_enabled: false,
        })
    }
}

/// Whether `actor` is an administrator of the organisation above the target account.
fn may_unseal(actor: &CurrentUser, t: &Target) -> bool {
    if actor.id == t.id {
        return false;
    }
    match actor.role {
        Role::SecurityAdmin => true,
        Role::NationalAdmin => t.school_id.is_some() || t.authority_region.is_some(),
        Role::AuthorityAdmin => {
            let Scope::Region(own) = actor.scope() else {
                return false;
            };
            match (&t.school_region, &t.authority_region) {
                (Some(school_region), _) => own.contains(school_region),
                // Strictly above: a lower authority in the region, never a peer or itself.
                (None, Some(r)) => r != own.as_str() && own.contains(r),
                _ => false,
            }
        }
        _ => false,
    }
}
