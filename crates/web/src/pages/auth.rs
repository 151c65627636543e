//! `GET/POST /login` and `POST /logout`.
//!
//! The login form is protected by a double-submit token: a random value in the
//! `xueji_login_csrf` cookie and the same value in the form's `_csrf` field. A successful login
//! ends any session of the old cookie and sets a new one (the session id rotates at login).
//! Logout checks the session's own CSRF token.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use serde::Deserialize;
use xueji_app::auth::SessionKind;
use xueji_domain::{Error, ErrorCode};

use super::{PageError, css_href, user_error};
use crate::AppState;
use crate::session::{ClientIp, LOGIN_CSRF_COOKIE, SESSION_COOKIE, WebUser, same_token};

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    css_href: &'static str,
    csrf: String,
    username: String,
    error: Option<String>,
    /// Ask the TOTP code too (the account has a second factor).
    totp: bool,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secure_attr() -> &'static str {
    if std::env::var("XUEJI_COOKIE_SECURE").is_ok_and(|v| v == "1") {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(name: &str, value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Lax; Path=/{}",
        secure_attr()
    ))
    .expect("cookie values are hex")
}

pub(super) fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{}",
        secure_attr()
    ))
    .expect("cookie names are ASCII")
}

/// Reads one cookie from request headers (as `session::cookie` does from request parts).
fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The login form. A user with a live session goes straight to the home page.
pub async fn login_form(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie_of(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = s.app.authenticate(&token, SessionKind::Web).await
    {
        return Redirect::to("/").into_response();
    }
    // Keep a token the browser already holds (two tabs on the login page both work).
    let csrf = cookie_of(&headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_hex);
    let page = LoginPage {
        css_href: css_href(),
        csrf: csrf.clone(),
        username: String::new(),
        error: None,
        totp: false,
    };
    let mut res = page.into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &csrf));
    res
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return PageError::bare(Error::new(
            ErrorCode::ValidationFailed,
            "登录表单提交的内容有误，请返回登录页重新登录",
        ))
        .into_response();
    };
    let cookie_token = cookie_of(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if cookie_token.is_empty() || !same_token(&cookie_token, &form.csrf) {
        return PageError::bare(Error::forbidden(
            "登录页面已过期或来源不明，请刷新登录页后重新登录",
        ))
        .into_response();
    }
    match s
        .app
        .login_with_totp(
            &form.username,
            &form.password,
            Some(form.totp.as_str()).filter(|t| !t.trim().is_empty()),
            &ip,
            SessionKind::Web,
        )
        .await
    {
        Ok(ok) => {
            if let Some(old) = cookie_of(&headers, SESSION_COOKIE)
                && let Err(e) = s.app.logout(&old).await
            {
                // The new session is valid either way; the old one expires on its own.
                tracing::warn!(error = %e, "could not end the previous session");
            }
            // `Redirect::to` answers 303 See Other.
            let mut res = Redirect::to("/").into_response();
            let h = res.headers_mut();
            h.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &ok.token));
            h.append(header::SET_COOKIE, clear_cookie(LOGIN_CSRF_COOKIE));
            res
        }
        Err(e) => {
            let e = user_error(e);
            let totp = e.code == ErrorCode::TotpRequired || e.field == Some("totp");
            let status = match e.code {
                ErrorCode::AccountLocked | ErrorCode::TooManyRequests => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
                _ => super::status_of(&e),
            };
            let page = LoginPage {
                css_href: css_href(),
                csrf: cookie_token,
                username: form.username.trim().to_string(),
                error: Some(e.message),
                totp,
            };
            (status, page).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

pub async fn logout(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let token = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !same_token(&token, &u.csrf) {
        let layout = super::Layout::new(&s.app, &u, "退出", "").await;
        return layout
            .fail(Error::forbidden("页面已过期，请刷新页面后再点击退出"))
            .into_response();
    }
    if let Err(e) = s.app.logout(&u.token).await {
        return PageError::bare(user_error(e)).into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    res
}
