//! 账号管理: the system administrator's (系统管理员) administration of accounts — the list (paged,
//! filtered by role, region and school), disabling and enabling, password resets (a new initial
//! password that must be changed at the next login), and changes of role and jurisdiction within
//! the business roles.
//!
//! 三员分立: only the system administrator administers accounts, and never the separated
//! administrators' own accounts (a system administrator who could reset the audit
//! administrator's password could read or hide from the audit trail in their name). Each action
//! ends the account's sessions where it changes what the user may do, and writes its audit row in
//! the same transaction. No password or hash goes into the audit trail.

use chrono::{DateTime, Utc};
use rand::Rng;
use xueji_domain::access::Role;
use xueji_domain::ids::RegionCode;
use xueji_domain::password;
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditEvent};
use crate::auth::{CurrentUser, hash_password};
use crate::error::{AppError, AppResult};
use crate::paging::{Page, Paged};
use crate::{App, on_pool, on_tx};

/// The roles an account may be given by the system administrator (never a separated
/// administrator's).
pub const BUSINESS_ROLES: [Role; 4] = [
    Role::SchoolAdmin,
    Role::SchoolReviewer,
    Role::AuthorityAdmin,
    Role::NationalAdmin,
];

/// Filters of the account list; empty values are no filter.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    /// A role (`school_admin` …).
    pub role: Option<String>,
    /// A region code: the accounts of the schools and authorities in its subtree.
    pub region: Option<String>,
    /// A school's 学校标识码: that school's accounts.
    pub school: Option<String>,
    /// Part of the user name or display name.
    pub q: Option<String>,
}

/// One account as the system administrator sees it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// `school_admin`, `school_reviewer`, `authority_admin`, `national_admin`, or one of the
    /// separated administrators (`system_admin`, `security_admin`, `audit_admin`).
    pub role: String,
    /// The school's code (school roles) or the authority's region code (authority role).
    pub org_code: Option<String>,
    pub org_name: Option<String>,
    /// The region of the account's organisation.
    pub region_code: Option<String>,
    pub must_change_password: bool,
    pub sealed: bool,
    pub disabled: bool,
    pub totp_enabled: bool,
    /// Exempt from the required second factor (the demo accounts).
    pub totp_exempt: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A password reset's answer: the new initial password, shown once to the administrator to hand
/// over; the user must change it at the next login.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PasswordReset {
    pub username: String,
    pub initial_password: String,
}

/// A change of role and jurisdiction.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `school_admin`, `school_reviewer`, `authority_admin` or `national_admin`.
    pub role: String,
    /// The school's 学校标识码 (school roles) or the authority's region code (authority role).
    #[serde(default)]
    pub org_code: Option<String>,
}

const ROW_SELECT: &str = "SELECT u.id, u.username, u.display_name, u.role, \
    COALESCE(s.code, u.authority_region) AS org_code, COALESCE(s.name, a.name) AS org_name, \
    COALESCE(s.region_code, u.authority_region) AS region_code, u.must_change_password, \
    u.sealed_at IS NOT NULL AS sealed, u.disabled_at IS NOT NULL AS disabled, u.totp_enabled, \
    u.totp_exempt, u.last_login_at, u.created_at \
    FROM users u LEFT JOIN schools s ON s.id = u.school_id \
    LEFT JOIN authorities a ON a.region_code = u.authority_region";

/// The list's conditions: role, region range, school code, name pattern ($1–$5).
const ROW_WHERE: &str = " WHERE ($1 = '' OR u.role = $1) \
    AND ($2 = '' OR (COALESCE(s.region_code, u.authority_region) >= $2 \
        AND COALESCE(s.region_code, u.authority_region) < $3)) \
    AND ($4 = '' OR s.code = $4) \
    AND ($5 = '' OR u.username LIKE $5 OR u.display_name LIKE $5)";

fn only_system_admin(actor: &CurrentUser) -> Result<(), Error> {
    if actor.role == Role::SystemAdmin {
        Ok(())
    } else {
        Err(Error::forbidden("只有系统管理员可以管理账号"))
    }
}

/// A random initial password that meets the policy: 14 characters of four classes, without
/// look-alike characters.
pub fn generate_initial_password(username: &str) -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"@#%+=";
    let mut rng = rand::rng();
    loop {
        let mut pick = |set: &[u8]| set[rng.random_range(0..set.len())] as char;
        let mut pw = String::new();
        for _ in 0..3 {
            pw.push(pick(UPPER));
            pw.push(pick(LOWER));
            pw.push(pick(LOWER));
            pw.push(pick(DIGIT));
        }
        pw.push(pick(SYMBOL));
        pw.push(pick(DIGIT));
        if password::check(username, &pw).is_ok() {
            return pw;
        }
    }
}

impl App {
    /// Resolves a role and its organisation code to the columns `(school_id, authority_region)`;
    /// separated administrators' roles are refused.
    pub(crate) async fn role_and_org(
        &self,
        role: &str,
        org_code: Option<&str>,
    ) -> AppResult<(Role, Option<i64>, Option<String>)> {
        let role = Role::parse(role.trim())
            .filter(|r| BUSINESS_ROLES.contains(r))
            .ok_or_else(|| Error::validation("role", "角色无效"))?;
        let code = org_code.map(str::trim).unwrap_or_default();
        Ok(match role {
            Role::SchoolAdmin | Role::SchoolReviewer => {
                let id: Option<i64> = on_pool!(self.db.read(), p => sqlx::query_scalar(
                    "SELECT id FROM schools WHERE code = $1"
                ).bind(code).fetch_optional(p).await)?;
                (
                    role,
                    Some(id.ok_or_else(|| Error::validation("org_code", "未找到该学校"))?),
                    None,
                )
            }
            Role::AuthorityAdmin => {
                let n: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
                    "SELECT COUNT(*) FROM authorities WHERE region_code = $1"
                ).bind(code).fetch_one(p).await)?;
                if n == 0 {
                    return Err(Error::validation("org_code", "未找到该学籍主管部门").into());
                }
                (role, None, Some(code.to_string()))
            }
            _ => (role, None, None),
        })
    }

    /// The accounts, by user name (system administrator only; the whole nation is their scope).
    pub async fn list_accounts(
        &self,
        actor: &CurrentUser,
        f: &AccountFilter,
        page: Page,
    ) -> AppResult<Paged<AccountRow>> {
        only_system_admin(actor)?;
        let role = f.role.as_deref().map(str::trim).unwrap_or_default();
        if !role.is_empty() && Role::parse(role).is_none() {
            return Err(Error::validation("role", "角色无效").into());
        }
        let (lo, hi) = match f.region.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => RegionCode::parse(r)
                .map_err(|e| Error {
                    field: Some("region"),
                    ..e
                })?
                .subtree_range(),
            None => (String::new(), String::new()),
        };
        let school = f.school.as_deref().map(str::trim).unwrap_or_default();
        let q = f.q.as_deref().map(str::trim).unwrap_or_default();
        let pattern = if q.is_empty() {
            String::new()
        } else {
            format!("%{}%", q.replace(['%', '_'], ""))
        };
        let count_sql = format!(
            "SELECT COUNT(*) FROM users u LEFT JOIN schools s ON s.id = u.school_id{ROW_WHERE}"
        );
        let total: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))
            .bind(role).bind(&lo).bind(&hi).bind(school).bind(&pattern).fetch_one(p).await)?;
        let sql = format!("{ROW_SELECT}{ROW_WHERE} ORDER BY u.username LIMIT $6 OFFSET $7");
        let items: Vec<AccountRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(role).bind(&lo).bind(&hi).bind(school).bind(&pattern)
            .bind(page.per_page).bind(page.offset()).fetch_all(p).await)?;
        Ok(Paged { items, total })
    }

    /// One account by user name, as the list shows it.
    pub async fn account_row(&self, username: &str) -> AppResult<Option<AccountRow>> {
        let sql = format!("{ROW_SELECT} WHERE u.username = $1");
        Ok(
            on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(username.trim()).fetch_optional(p).await)?,
        )
    }

    /// The account an administration action targets: it exists, and it is not a separated
    /// administrator's (nor the actor's own).
    async fn administrable(&self, actor: &CurrentUser, username: &str) -> AppResult<AccountRow> {
        only_system_admin(actor)?;
        let Some(t) = self.account_row(username).await? else {
            return Err(Error::not_found("账号").into());
        };
        let role = Role::parse(&t.role);
        if t.id == actor.id || role.is_none_or(Role::is_separated_admin) {
            return Err(Error::forbidden(
                "三员分立：系统管理员不能管理系统管理员、安全管理员、安全审计员的账号",
            )
            .into());
        }
        Ok(t)
    }

    /// Audits an administration action in its transaction, commits it, and drops the cached
    /// sessions (the change may end or alter them).
    async fn commit_account_change(
        &self,
        mut tx: crate::db::Tx,
        actor: &CurrentUser,
        action: &'static str,
        t: &AccountRow,
        before: Option<serde_json::Value>,
        after: serde_json::Value,
    ) -> AppResult<()> {
        audit::record(
            &mut tx,
            self.clock.now(),
            &actor.audit_actor(),
            AuditEvent {
                action,
                entity_type: "user",
                entity_id: t.id.to_string(),
                before,
                after: Some(after),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sessions_changed();
        Ok(())
    }

    /// The account as it is after a change.
    async fn account_after(&self, username: &str) -> AppResult<AccountRow> {
        self.account_row(username)
            .await?
            .ok_or_else(|| AppError::Other("account vanished".into()))
    }

    /// 停用: the account can no longer sign in, and its sessions end. Reversible by
    /// [`App::enable_account`].
    pub async fn disable_account(
        &self,
        actor: &CurrentUser,
        username: &str,
    ) -> AppResult<AccountRow> {
        let t = self.administrable(actor, username).await?;
        if t.disabled {
            return Err(Error::new(ErrorCode::Conflict, "该账号已停用").into());
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (n, ended) = on_tx!(&mut tx, c => {
            let n = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
                .bind(now).bind(t.id).execute(&mut *c).await?.rows_affected();
            let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(t.id).execute(&mut *c).await?.rows_affected();
            (n, ended)
        });
        if n == 0 {
            return Err(Error::conflict().into());
        }
        self.commit_account_change(
            tx,
            actor,
            "account_disable",
            &t,
            None,
            serde_json::json!({ "username": t.username, "sessions_ended": ended }),
        )
        .await?;
        self.account_after(&t.username).await
    }

    /// 启用: a disabled account may sign in again.
    pub async fn enable_account(
        &self,
        actor: &CurrentUser,
        username: &str,
    ) -> AppResult<AccountRow> {
        let t = self.administrable(actor, username).await?;
        if !t.disabled {
            return Err(Error::new(ErrorCode::Conflict, "该账号未停用").into());
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE users SET disabled_at = NULL, locked_until = NULL WHERE id = $1 AND disabled_at IS NOT NULL"
        ).bind(t.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(Error::conflict().into());
        }
        // Counts as use: an account enabled now is not sealed as unused at once.
        on_tx!(&mut tx, c => sqlx::query("UPDATE users SET unsealed_at = $1 WHERE id = $2 AND sealed_at IS NULL")
            .bind(now).bind(t.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        self.commit_account_change(
            tx,
            actor,
            "account_enable",
            &t,
            None,
            serde_json::json!({ "username": t.username }),
        )
        .await?;
        self.account_after(&t.username).await
    }

    /// Resets an account's password to a new initial one (the given one, which must meet the
    /// policy, or a generated one): the user must change it at the next login. The old password
    /// joins the history, the account's sessions end and a lockout is lifted.
    pub async fn reset_account_password(
        &self,
        actor: &CurrentUser,
        username: &str,
        initial_password: Option<&str>,
    ) -> AppResult<PasswordReset> {
        let t = self.administrable(actor, username).await?;
        let pw = match initial_password.filter(|p| !p.is_empty()) {
            Some(p) => {
                password::check(&t.username, p).map_err(|e| Error {
                    field: Some("initial_password"),
                    ..e
                })?;
                p.to_string()
            }
            None => generate_initial_password(&t.username),
        };
        let hash = {
            let pw = pw.clone();
            tokio::task::spawn_blocking(move || hash_password(&pw))
                .await
                .map_err(|e| AppError::Other(e.to_string()))??
        };
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let ended = on_tx!(&mut tx, c => {
            sqlx::query(
                "INSERT INTO password_history (user_id, password_hash, created_at) \
                 SELECT id, password_hash, $2 FROM users WHERE id = $1",
            ).bind(t.id).bind(now).execute(&mut *c).await?;
            sqlx::query(
                "UPDATE users SET password_hash = $1, password_changed_at = $2, \
                 must_change_password = TRUE, locked_until = NULL WHERE id = $3",
            ).bind(&hash).bind(now).bind(t.id).execute(&mut *c).await?;
            sqlx::query("DELETE FROM login_failures WHERE username = $1")
                .bind(&t.username).execute(&mut *c).await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(t.id).execute(&mut *c).await.map(|r| r.rows_affected())?
        });
        self.commit_account_change(
            tx,
            actor,
            "account_password_reset",
            &t,
            None,
            serde_json::json!({ "username": t.username, "sessions_ended": ended }),
        )
        .await?;
        Ok(PasswordReset {
            username: t.username,
            initial_password: pw,
        })
    }

    /// Gives an account another business role and organisation (a school for school roles, an
    /// authority for the authority role, none for the national role). The account's sessions
    /// end, so that the user signs in again under the new role.
    pub async fn change_account_role(
        &self,
        actor: &CurrentUser,
        username: &str,
        change: &RoleChange,
    ) -> AppResult<AccountRow> {
        let t = self.administrable(actor, username).await?;
        let (role, school_id, authority_region) = self
            .role_and_org(&change.role, change.org_code.as_deref())
            .await?;
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => {
            sqlx::query("UPDATE users SET role = $1, school_id = $2, authority_region = $3 WHERE id = $4")
                .bind(role.as_str()).bind(school_id).bind(&authority_region).bind(t.id)
                .execute(&mut *c).await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(t.id).execute(&mut *c).await.map(|r| r.rows_affected())?
        });
        self.commit_account_change(
            tx,
            actor,
            "account_role_change",
            &t,
            Some(serde_json::json!({ "role": t.role, "org_code": t.org_code })),
            serde_json::json!({
                "username": t.username, "role": role.as_str(),
                "school_id": school_id, "authority_region": authority_region,
            }),
        )
        .await?;
        self.account_after(&t.username).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_initial_passwords_meet_the_policy_and_differ() {
        let a = generate_initial_password("4101050001-admin");
        let b = generate_initial_password("4101050001-admin");
        assert_ne!(a, b);
        for p in [a, b] {
            assert_eq!(p.chars().count(), 14);
            password::check("4101050001-admin", &p).expect("meets the policy");
        }
    }
}
