//! Account security over the API: password change, logout everywhere, TOTP enrolment, accounts
//! created and administered by the system administrator (list, disable/enable, password reset,
//! role and jurisdiction), unsealing, the audit trail (audit administrator only) and the security
//! settings (security administrator).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use xueji_app::account_admin::{AccountFilter, AccountRow, PasswordReset, RoleChange};
use xueji_app::accounts::{AccountInfo, NewAccount, TotpEnrolment};
use xueji_app::audit_trail::{AuditEntry, AuditFilter};
use xueji_app::paging::{Page, PageQuery};
use xueji_domain::Error;
use xueji_domain::access::Role;

use super::paged;
use crate::AppState;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, Problem};
use crate::session::{ApiUser, bearer_token};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The current password.
    pub old: String,
    /// The new password: at least 10 characters mixing three of upper case, lower case, digits
    /// and symbols, not containing the user name, none of the last five.
    pub new: String,
}

/// Changes the caller's password (also the way out of a forced change). Other sessions of the
/// user end; this token stays valid.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordBody,
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn change_password(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    headers: HeaderMap,
    ApiJson(b): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    s.app
        .change_password(&u, &b.old, &b.new, bearer_token(&headers))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogoutAllOut {
    /// Sessions and tokens ended, this one included.
    pub sessions_ended: u64,
}

/// Ends every session and token of the caller (退出所有登录).
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = LogoutAllOut), (status = 401, body = Problem)))]
pub async fn logout_all(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<LogoutAllOut>> {
    let sessions_ended = s.app.logout_everywhere(&u).await?;
    Ok(Json(LogoutAllOut { sessions_ended }))
}

/// Starts TOTP enrolment: a new secret as an `otpauth://` URI and a key to type by hand. Not
/// required at login until confirmed.
#[utoipa::path(post, path = "/api/v1/auth/totp", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrolment), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem)))]
pub async fn totp_begin(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<TotpEnrolment>> {
    Ok(Json(s.app.totp_begin(&u).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmBody {
    /// The 6-digit code the authenticator shows now.
    pub code: String,
}

/// Confirms TOTP enrolment with a code; from then on login asks for one (`totp_required`).
#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "auth", security(("bearer" = [])),
    request_body = TotpConfirmBody,
    responses((status = 204), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn totp_confirm(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiJson(b): ApiJson<TotpConfirmBody>,
) -> ApiResult<StatusCode> {
    s.app.totp_confirm(&u, &b.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates an account (system administrator only). The user must change the initial password
/// before anything else (`password_change_required`).
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", security(("bearer" = [])),
    request_body = NewAccount,
    responses((status = 201, body = AccountInfo), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiJson(b): ApiJson<NewAccount>,
) -> ApiResult<(StatusCode, Json<AccountInfo>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.create_account(&u, b).await?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AccountQuery {
    /// A role: `school_admin`, `school_reviewer`, `authority_admin`, `national_admin`,
    /// `system_admin`, `security_admin` or `audit_admin`.
    pub role: Option<String>,
    /// A region code: the accounts of the schools and authorities in its subtree.
    pub region: Option<String>,
    /// A school's 学校标识码.
    pub school: Option<String>,
    /// Part of the user name or display name.
    pub q: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// The accounts, by user name (账号管理; system administrator only).
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", security(("bearer" = [])),
    params(AccountQuery),
    responses((status = 200, body = Vec<AccountRow>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    let f = AccountFilter {
        role: q.role,
        region: q.region,
        school: q.school,
        q: q.q,
    };
    Ok(paged(s.app.list_accounts(&u, &f, page).await?))
}

/// Disables (停用) an account: it can no longer sign in and its sessions end (system
/// administrator only; never a separated administrator's account).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/disable", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = AccountRow), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn disable(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<Json<AccountRow>> {
    Ok(Json(s.app.disable_account(&u, &username).await?))
}

/// Enables (启用) a disabled account (system administrator only).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/enable", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = AccountRow), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn enable(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<Json<AccountRow>> {
    Ok(Json(s.app.enable_account(&u, &username).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetBody {
    /// The new initial password (must meet the policy); omitted: one is generated.
    #[serde(default)]
    pub initial_password: Option<String>,
}

/// Resets (重置) an account's password to a new initial password, answered once; the user must
/// change it at the next login (`password_change_required` until then). The account's sessions
/// end (system administrator only).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/password-reset", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = PasswordResetBody,
    responses((status = 200, body = PasswordReset), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn password_reset(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<PasswordResetBody>,
) -> ApiResult<Json<PasswordReset>> {
    Ok(Json(
        s.app
            .reset_account_password(&u, &username, b.initial_password.as_deref())
            .await?,
    ))
}

/// Changes an account's role and jurisdiction within the business roles: a school (school
/// roles), an authority (authority role) or the nation (national role). The account's sessions
/// end (system administrator only).
#[utoipa::path(put, path = "/api/v1/accounts/{username}/role", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = AccountRow), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn change_role(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<RoleChange>,
) -> ApiResult<Json<AccountRow>> {
    Ok(Json(s.app.change_account_role(&u, &username, &b).await?))
}

/// Unseals (解封) an account sealed after six months unused: the security administrator, or an
/// administrator of the organisation above the account.
#[utoipa::path(post, path = "/api/v1/accounts/{username}/unseal", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn unseal(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.app.unseal_account(&u, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes an account's TOTP second factor (lost phone; security administrator only).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp-reset", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn reset_totp(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(username): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.app.reset_totp(&u, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpExemptBody {
    /// `true`: the account need not enrol a second factor; `false`: it must (if its role does).
    pub exempt: bool,
}

/// Exempts an account from the required TOTP second factor, or ends the exemption (security
/// administrator only; not their own account).
#[utoipa::path(post, path = "/api/v1/accounts/{username}/totp-exempt", tag = "accounts", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = TotpExemptBody,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn totp_exempt(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(username): ApiPath<String>,
    ApiJson(b): ApiJson<TotpExemptBody>,
) -> ApiResult<StatusCode> {
    s.app.set_totp_exempt(&u, &username, b.exempt).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    /// The actor's user name.
    pub actor: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// The audit trail, newest first (audit administrator only; read-only: no route alters it).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 403, body = Problem)))]
pub async fn audit(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    let filter = AuditFilter {
        action: q.action,
        entity_type: q.entity_type,
        entity_id: q.entity_id,
        actor: q.actor,
    };
    Ok(paged(s.app.audit_entries(&u, &filter, page).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SecuritySettings {
    pub session_idle_minutes: i64,
    pub session_absolute_hours: i64,
    pub login_max_failures_per_address: i64,
    /// Null when password rotation is off.
    pub password_max_age_days: Option<i64>,
    /// Who must use the TOTP second factor: `authority` (authority, national and the separated
    /// administrators' accounts), `all` or `none`.
    pub totp_required: String,
    /// Whether the key that encrypts TOTP secrets at rest is configured.
    pub secret_key_configured: bool,
    pub seal_after_days: i64,
    pub audit_min_keep_days: i64,
}

/// The account-security settings in force (security administrator only; set by the operator
/// through `XUEJI_*` environment variables).
#[utoipa::path(get, path = "/api/v1/security/settings", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = SecuritySettings), (status = 403, body = Problem)))]
pub async fn settings(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<SecuritySettings>> {
    if u.role != Role::SecurityAdmin {
        return Err(Error::forbidden("只有安全管理员可以查看安全设置").into());
    }
    let p = s.app.accounts();
    Ok(Json(SecuritySettings {
        session_idle_minutes: p.session_idle.num_minutes(),
        session_absolute_hours: p.session_absolute.num_hours(),
        login_max_failures_per_address: p.max_failures_per_address,
        password_max_age_days: p.password_max_age.map(|d| d.num_days()),
        totp_required: p.totp_required.as_str().into(),
        secret_key_configured: s.app.has_secret_key(),
        seal_after_days: xueji_app::accounts::SEAL_AFTER.num_days(),
        audit_min_keep_days: xueji_app::audit_trail::MIN_KEEP_DAYS,
    }))
}
