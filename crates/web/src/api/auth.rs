//! `POST /api/v1/auth/login`, `logout`, and `GET /api/v1/auth/me`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use xueji_app::auth::{CurrentUser, SessionKind};

use crate::AppState;
use crate::error::{ApiJson, ApiResult, Problem};
use crate::session::{ApiUser, ClientIp, bearer_token};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
    /// The TOTP code, on the second call after a `totp_required` answer (enrolled accounts).
    #[serde(default)]
    pub totp: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// `school_admin`, `school_reviewer`, `authority_admin` or `national_admin`.
    pub role: String,
    /// `school`, `authority` or `national`.
    pub org_type: String,
    /// School code, authority region code, or null for the national administrator.
    pub org_code: Option<String>,
    pub org_name: String,
    /// The initial (or expired) password must be changed (`POST /api/v1/auth/password`) before
    /// any other call.
    pub must_change_password: bool,
    /// The role must use the TOTP second factor and the account has not enrolled: until it does
    /// (`POST /api/v1/auth/totp`, then `/api/v1/auth/totp/confirm`), every call but `auth/*`
    /// answers 403 `totp_enrolment_required`.
    pub must_enrol_totp: bool,
}

impl From<&CurrentUser> for UserOut {
    fn from(u: &CurrentUser) -> Self {
        use xueji_domain::access::OrgRef;
        let (org_type, org_code) = match &u.org {
            OrgRef::School(c) => ("school", Some(c.clone())),
            OrgRef::Authority(r) => ("authority", Some(r.clone())),
            OrgRef::National => ("national", None),
        };
        UserOut {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str().into(),
            org_type: org_type.into(),
            org_code,
            org_name: u.org_name.clone(),
            must_change_password: u.must_change_password,
            must_enrol_totp: false,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginOut {
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    pub user: UserOut,
}

/// Logs in and returns a bearer token. The 6th wrong password within 15 minutes locks the
/// account for 15 minutes (`account_locked`); too many failures from one address answer
/// `too_many_requests`. An account with a TOTP second factor first gets `totp_required` (401)
/// and repeats the call with `totp`. A sealed account (six months unused) gets `account_sealed`, a
/// disabled one `account_disabled`. An account whose role must use the second factor and has
/// none yet signs in with `must_enrol_totp: true` and may only enrol (`auth/*`) until it has.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = LoginOut), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Json<LoginOut>> {
    let ok = s
        .app
        .login_with_totp(
            &body.username,
            &body.password,
            body.totp.as_deref(),
            &ip,
            SessionKind::Api,
        )
        .await?;
    Ok(Json(LoginOut {
        token: ok.token,
        user: UserOut {
            must_enrol_totp: ok.must_enrol_totp,
            ..UserOut::from(&ok.user)
        },
    }))
}

/// Ends the bearer token.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(
    State(s): State<AppState>,
    ApiUser(_user): ApiUser,
    headers: axum::http::HeaderMap,
) -> ApiResult<StatusCode> {
    if let Some(t) = bearer_token(&headers) {
        s.app.logout(t).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = Problem)))]
pub async fn me(State(s): State<AppState>, ApiUser(u): ApiUser) -> ApiResult<Json<UserOut>> {
    let must_enrol_totp = s.app.totp_enrolment_due(&u).await?;
    Ok(Json(UserOut {
        must_enrol_totp,
        ..UserOut::from(&u)
    }))
}
