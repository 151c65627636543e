//! Who is calling: bearer tokens for the API, the session cookie (with its CSRF token) for pages.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use xueji_app::auth::{CurrentUser, SessionKind};
use xueji_domain::ErrorCode;

use crate::AppState;
use crate::error::ApiError;

pub const SESSION_COOKIE: &str = "xueji_session";
pub const LOGIN_CSRF_COOKIE: &str = "xueji_login_csrf";

/// The signed-in user of an API request (`Authorization: Bearer …`).
pub struct ApiUser(pub CurrentUser);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token =
            bearer_token(&parts.headers).ok_or(ApiError::from(ErrorCode::Unauthenticated))?;
        match state.app.session(token, SessionKind::Api).await? {
            Some(s) => {
                let standing = crate::gate::Standing {
                    must_enrol_totp: s.must_enrol_totp,
                };
                match crate::gate::api_refusal(&s.user, standing, parts.uri.path()) {
                    None => Ok(ApiUser(s.user)),
                    Some(e) => Err(e.into()),
                }
            }
            None => Err(ErrorCode::Unauthenticated.into()),
        }
    }
}

pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Reads one cookie from the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The signed-in user of a page request, with the session's CSRF token for its forms.
pub struct WebUser {
    pub user: CurrentUser,
    pub csrf: String,
    pub token: String,
    /// The user must enrol a TOTP second factor (they are on the enrolment page).
    pub must_enrol_totp: bool,
}

/// A page request without a valid session: redirect to the login page.
pub struct LoginRedirect;

impl axum::response::IntoResponse for LoginRedirect {
    fn into_response(self) -> axum::response::Response {
        axum::response::Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let Some(token) = cookie(parts, SESSION_COOKIE).map(str::to_string) else {
            return Err(LoginRedirect.into_response());
        };
        match state.app.session(&token, SessionKind::Web).await {
            Ok(Some(xueji_app::auth::Session {
                user,
                csrf,
                must_enrol_totp,
            })) => match crate::gate::page_gate(
                &user,
                crate::gate::Standing { must_enrol_totp },
                parts.uri.path(),
            ) {
                crate::gate::PageGate::Pass => Ok(WebUser {
                    user,
                    csrf,
                    token,
                    must_enrol_totp,
                }),
                crate::gate::PageGate::Redirect(to) => {
                    Err(axum::response::Redirect::to(to).into_response())
                }
                crate::gate::PageGate::Refuse(e) => {
                    Err(crate::pages::PageError::bare(e).into_response())
                }
            },
            Ok(None) => Err(LoginRedirect.into_response()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

/// The client's address, for login throttling.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientIp(ip))
    }
}

/// Constant-time comparison for CSRF tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The session's CSRF token must come back with every form of a signed-in page.
pub fn check_csrf(u: &WebUser, token: &str) -> Result<(), xueji_domain::Error> {
    if !token.is_empty() && same_token(token, &u.csrf) {
        Ok(())
    } else {
        Err(xueji_domain::Error::forbidden(
            "页面已过期或来源不明，请刷新页面后重新提交",
        ))
    }
}
