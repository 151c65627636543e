//! 处分记录 of one student: `GET /students/{no}/sanctions` lists them; the school that holds the
//! student records one (`POST …/sanctions`) or revokes one (`POST …/sanctions/{id}/revoke`).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use xueji_app::sanctions::NewSanction;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::sanction::SanctionKind;
use xueji_domain::{Error, ErrorCode};

use super::{Layout, PageResult, fmt_time, last_value, status_of, url_encode, user_error};
use crate::AppState;
use crate::session::{WebUser, check_csrf};

type Pairs = Vec<(String, String)>;

pub struct Row {
    pub id: i64,
    pub kind: String,
    pub reason: String,
    pub decided_on: String,
    pub ends_on: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub school_name: String,
    pub recorded_at: String,
    pub revoke_reason: String,
    pub revocable: bool,
}

/// What the user typed into a refused form, and why it was refused.
#[derive(Default)]
pub struct Typed {
    /// `record` or `revoke:{id}`.
    pub form: String,
    pub field: String,
    pub message: String,
    pub kind: String,
    pub reason: String,
    pub decided_on: String,
    pub ends_on: String,
    /// The refusal, for the page's HTTP status.
    pub error: Option<Error>,
}

#[derive(Template, WebTemplate)]
#[template(path = "sanctions.html")]
pub struct SanctionsPage {
    layout: Layout,
    student_no: String,
    student_href: String,
    student_name: String,
    rows: Vec<Row>,
    /// The caller is the 学籍管理员 of the student's school: the forms are shown.
    may_write: bool,
    kinds: Vec<(&'static str, &'static str)>,
    done: &'static str,
    t: Typed,
}

async fn render(
    s: &AppState,
    u: &WebUser,
    no: &str,
    done: &'static str,
    t: Typed,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "处分记录", "/students").await;
    let student = match s.app.student(&u.user, no).await {
        Ok(d) => d,
        Err(e) => return Ok(layout.fail(e).into_response()),
    };
    let list = match s.app.sanctions(&u.user, no).await {
        Ok(l) => l,
        Err(e) => return Ok(layout.fail(e).into_response()),
    };
    let holds_now =
        matches!(&u.user.org, OrgRef::School(c) if Some(c.as_str()) == student.school.as_deref());
    let may_write = holds_now && u.user.role == Role::SchoolAdmin;
    let rows = list
        .into_iter()
        .map(|x| {
            let (state, state_class) = if x.revoked_at.is_some() {
                ("已解除", "st-ended")
            } else if x.in_force {
                ("处分期内", "st-review")
            } else {
                ("已期满", "st-ended")
            };
            Row {
                id: x.id,
                kind: x.kind_name,
                reason: x.reason,
                decided_on: x.decided_on.to_string(),
                ends_on: x.ends_on.to_string(),
                state,
                state_class,
                school_name: x.school_name,
                recorded_at: fmt_time(&x.recorded_at),
                revoke_reason: x.revoke_reason.unwrap_or_default(),
                revocable: may_write && x.in_force,
            }
        })
        .collect();
    let status = t
        .error
        .as_ref()
        .map(status_of)
        .unwrap_or(axum::http::StatusCode::OK);
    let mut layout = layout;
    layout.retitle(format!("处分记录 · {}", student.summary.name));
    let page = SanctionsPage {
        layout,
        student_href: format!("/students/{}", url_encode(&student.summary.student_no)),
        student_no: student.summary.student_no.clone(),
        student_name: student.summary.name.clone(),
        rows,
        may_write,
        kinds: SanctionKind::ALL
            .iter()
            .map(|k| (k.as_str(), k.label_zh()))
            .collect(),
        done,
        t,
    };
    Ok((status, page).into_response())
}

pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    Path(no): Path<String>,
    Query(q): Query<Pairs>,
) -> PageResult<Response> {
    let done = match last_value(&q, "done").as_str() {
        "record" => "处分已记录",
        "revoke" => "处分已解除",
        _ => "",
    };
    render(&s, &u, &no, done, Typed::default()).await
}

fn parse_day(v: &str, field: &'static str, required: bool) -> Result<Option<NaiveDate>, Error> {
    let v = v.trim();
    if v.is_empty() {
        return if required {
            Err(Error::validation(field, "请填写日期"))
        } else {
            Ok(None)
        };
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| Error::validation(field, "日期格式应为YYYY-MM-DD，如2026-10-08"))
}

pub async fn record(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let no = path.map(|Path(p)| p).unwrap_or_default();
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let get = |k: &str| last_value(&pairs, k);
    let t = Typed {
        form: "record".into(),
        kind: get("kind"),
        reason: get("reason"),
        decided_on: get("decided_on"),
        ends_on: get("ends_on"),
        ..Default::default()
    };
    let r: Result<(), Error> = async {
        check_csrf(&u, &get("_csrf"))?;
        let decided_on = parse_day(&t.decided_on, "decided_on", true)?.unwrap_or_default();
        let ends_on = parse_day(&t.ends_on, "ends_on", false)?;
        let req = NewSanction {
            kind: t.kind.clone(),
            reason: t.reason.clone(),
            decided_on,
            ends_on,
        };
        s.app
            .record_sanction(&u.user, &no, &req)
            .await
            .map(|_| ())
            .map_err(user_error)
    }
    .await;
    finish(&s, &u, &no, "record", r, t).await
}

pub async fn revoke(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let (no, id_s) = path.map(|Path(p)| p).unwrap_or_default();
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let t = Typed {
        form: format!("revoke:{id_s}"),
        reason: last_value(&pairs, "reason"),
        ..Default::default()
    };
    let r: Result<(), Error> = async {
        check_csrf(&u, &last_value(&pairs, "_csrf"))?;
        let id: i64 = id_s.parse().map_err(|_| Error::not_found("该处分记录"))?;
        s.app
            .revoke_sanction(&u.user, id, &t.reason)
            .await
            .map(|_| ())
            .map_err(user_error)
    }
    .await;
    finish(&s, &u, &no, "revoke", r, t).await
}

/// After a form: back to the list with the notice, the refusal page for outsiders and wrong
/// roles, or the list again with the refused form as typed.
async fn finish(
    s: &AppState,
    u: &WebUser,
    no: &str,
    done: &str,
    r: Result<(), Error>,
    mut t: Typed,
) -> PageResult<Response> {
    let Err(e) = r else {
        let to = format!("/students/{}/sanctions?done={done}", url_encode(no));
        return Ok(Redirect::to(&to).into_response());
    };
    if matches!(e.code, ErrorCode::Forbidden | ErrorCode::NotFound) {
        let layout = Layout::new(&s.app, u, "处分记录", "/students").await;
        return Ok(layout.fail(e).into_response());
    }
    t.field = e.field.unwrap_or_default().to_string();
    t.message = e.message.clone();
    t.error = Some(e);
    render(s, u, no, "", t).await
}
