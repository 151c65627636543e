//! 家长查询 (public, no login): `GET /query` shows the form, `POST /query` the progress of one
//! transfer — only the fields of [`ParentView`]. The form is protected like the login form, by a
//! double-submit token (the `xueji_query_csrf` cookie and the `_csrf` field); failed guesses are
//! throttled per address by the use case.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use xueji_app::parent::ParentView;
use xueji_domain::{Error, ErrorCode};

use super::Pairs;
use crate::AppState;
use crate::pages::{css_href, last_value, status_of, user_error};
use crate::session::{ClientIp, same_token};

pub const QUERY_CSRF_COOKIE: &str = "xueji_query_csrf";

/// The result as shown: every field of [`ParentView`], in words.
pub struct Progress {
    pub kind: String,
    pub status: String,
    pub current_step: String,
    pub due_date: String,
    pub outcome: String,
    pub filed_on: String,
}

impl From<ParentView> for Progress {
    fn from(v: ParentView) -> Self {
        let dash = || "—".to_string();
        Progress {
            kind: v.kind,
            status: v.status,
            current_step: v.current_step.unwrap_or_else(dash),
            due_date: v
                .due_date
                .map(|d| d.format("%Y年%m月%d日").to_string())
                .unwrap_or_else(dash),
            outcome: v.outcome.unwrap_or_else(|| "办理中".to_string()),
            filed_on: v.filed_on.format("%Y年%m月%d日").to_string(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "parent.html")]
pub struct ParentPage {
    css_href: &'static str,
    csrf: String,
    code: String,
    name: String,
    error: String,
    /// `code`, `student_name`, or empty (a message about the whole query).
    error_field: &'static str,
    progress: Option<Progress>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn csrf_cookie(value: &str) -> HeaderValue {
    let secure = if std::env::var("XUEJI_COOKIE_SECURE").is_ok_and(|v| v == "1") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{QUERY_CSRF_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/query{secure}"
    ))
    .expect("cookie values are hex")
}

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

/// The browser's token when it holds a well-formed one (two tabs both work), else a new one.
fn token_of(headers: &HeaderMap) -> String {
    cookie_of(headers, QUERY_CSRF_COOKIE)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_hex)
}

fn respond(status: StatusCode, page: ParentPage) -> Response {
    let cookie = csrf_cookie(&page.csrf);
    let mut res = (status, page).into_response();
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

pub async fn form(headers: HeaderMap) -> Response {
    let page = ParentPage {
        css_href: css_href(),
        csrf: token_of(&headers),
        code: String::new(),
        name: String::new(),
        error: String::new(),
        error_field: "",
        progress: None,
    };
    respond(StatusCode::OK, page)
}

/// What the form may hold before the use case is asked.
fn check_input(code: &str, name: &str) -> Result<(), Error> {
    if code.is_empty() {
        return Err(Error::validation("code", "请填写查询码"));
    }
    if code.chars().count() > 20 {
        return Err(Error::validation("code", "查询码为10位字母和数字"));
    }
    if name.is_empty() {
        return Err(Error::validation("student_name", "请填写学生姓名"));
    }
    if name.chars().count() > 50 {
        return Err(Error::validation("student_name", "学生姓名过长"));
    }
    Ok(())
}

pub async fn submit(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<Pairs>, FormRejection>,
) -> Response {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let code = last_value(&pairs, "code");
    let name = last_value(&pairs, "student_name");
    let cookie_token = cookie_of(&headers, QUERY_CSRF_COOKIE).unwrap_or_default();
    let mut page = ParentPage {
        css_href: css_href(),
        csrf: token_of(&headers),
        code: code.clone(),
        name: name.clone(),
        error: String::new(),
        error_field: "",
        progress: None,
    };
    if cookie_token.is_empty() || !same_token(&cookie_token, &last_value(&pairs, "_csrf")) {
        page.error = "查询页面已过期，请重新提交查询".into();
        return respond(StatusCode::FORBIDDEN, page);
    }
    let result = match check_input(&code, &name) {
        Ok(()) => s
            .app
            .parent_query(&code, &name, &ip)
            .await
            .map_err(user_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => {
            page.progress = Some(v.into());
            respond(StatusCode::OK, page)
        }
        Err(e) => {
            let status = match e.code {
                ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                _ => status_of(&e),
            };
            page.error_field = match e.field {
                Some("code") => "code",
                Some("student_name") => "student_name",
                _ => "",
            };
            page.error = if e.code == ErrorCode::Internal {
                "系统繁忙，请稍后再试".into()
            } else {
                e.message
            };
            respond(status, page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn input_is_checked_before_asking() {
        assert_eq!(check_input("", "张三").unwrap_err().field, Some("code"));
        assert_eq!(
            check_input("AB12CD34EF", "").unwrap_err().field,
            Some("student_name")
        );
        assert!(check_input("AB12CD34EF", "张三").is_ok());
    }

    #[test]
    fn progress_shows_only_the_view() {
        let p: Progress = ParentView {
            kind: "跨省转学".into(),
            status: "待转出学校审核".into(),
            current_step: Some("待转出学校审核".into()),
            due_date: NaiveDate::from_ymd_opt(2026, 11, 20),
            outcome: None,
            filed_on: NaiveDate::from_ymd_opt(2026, 11, 6).unwrap(),
        }
        .into();
        assert_eq!(p.outcome, "办理中");
        assert_eq!(p.due_date, "2026年11月20日");
    }
}
