//! One transfer: `GET /transfers/{id}` (明细: the facts, every step of the chain, the paper file,
//! and the forms that apply to the caller now), the actions those forms post to
//! (`/transfers/{id}/review|withdraw|pull|paper`), the evidence download, and the printable
//! 转学联系函 (`GET /transfers/{id}/notice`).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use xueji_app::transfers::{DUE_SOON_DAYS, STEP_DEADLINE_DAYS, TransferDetail};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::transfer::{TransferKind, TransferStatus};
use xueji_domain::{Error, ErrorCode};

use super::transfers::{Due, check_csrf, due_cell, kind_label};
use super::{
    Layout, PageResult, fmt_date, fmt_time, grade_label, last_value, status_of, url_encode,
    user_error,
};
use crate::AppState;
use crate::session::WebUser;

type Pairs = Vec<(String, String)>;

/// Ways of sending the paper file offered by the form (寄送方式).
const PAPER_METHODS: &[&str] = &["EMS", "挂号信", "机要交通", "专人送达", "家长携带"];

pub struct StepView {
    pub party_label: String,
    pub party_name: String,
    /// 同意 / 不同意 / 待审核 / 未到达 / —
    pub result: &'static str,
    pub result_class: &'static str,
    pub opinion: String,
    pub actor_name: String,
    pub decided_at: String,
    pub began_on: String,
    pub due: Due,
    pub waiting: bool,
    /// 对接: the docked province's system that takes this step (empty: people here).
    pub docked: String,
}

pub struct EvidenceView {
    pub href: String,
    pub filename: String,
    pub size: String,
}

/// What the caller may do now, and what they typed into a form that was refused.
#[derive(Default)]
pub struct Forms {
    pub review: bool,
    pub withdraw: bool,
    pub pull: bool,
    pub send: bool,
    pub receive: bool,
    pub notice: bool,
    /// The form whose submission failed (`review`, `withdraw`, `pull`, `sent`, `received`).
    pub failed: String,
    pub field: String,
    pub message: String,
    pub opinion: String,
    pub reason: String,
    pub method: String,
    pub note: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "transfer_detail.html")]
pub struct DetailPage {
    layout: Layout,
    d: TransferDetail,
    kind_label: &'static str,
    status_class: &'static str,
    from_authority_name: String,
    to_authority_name: String,
    /// 转入年级和班级, e.g. 一年级（1）班.
    to_place: String,
    from_grade: String,
    created_at: String,
    approved_at: String,
    pulled_at: String,
    steps: Vec<StepView>,
    evidence: Vec<EvidenceView>,
    /// The paper file block is shown once the file is pulled.
    paper: bool,
    paper_due: String,
    paper_overdue: bool,
    paper_sent_at: String,
    paper_method: String,
    paper_sent_note: String,
    paper_received_at: String,
    paper_received_note: String,
    withdraw_reason: String,
    /// The waiting step and its due date, in a sentence.
    waiting_text: String,
    back_href: String,
    done: String,
    /// A refusal that belongs to no field.
    error: String,
    f: Forms,
    methods: Vec<&'static str>,
}

/// 年级 and 班级 in one phrase: class names usually hold their grade already (一年级（1）班).
fn grade_and_class(grade: &str, class_name: &str) -> String {
    if class_name.starts_with(grade) {
        class_name.to_string()
    } else {
        format!("{grade}{class_name}")
    }
}

fn parse_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| *n > 0)
}

/// Authority names by region code, from the chain's steps.
fn authority_names(d: &TransferDetail) -> HashMap<String, String> {
    d.steps
        .iter()
        .filter(|s| s.party_type == "authority")
        .map(|s| (s.party.clone(), s.party_name.clone()))
        .collect()
}

/// Whether the caller's organisation is one of the four parties (the two schools and the
/// authorities of the chain).
fn is_party(u: &WebUser, d: &TransferDetail) -> bool {
    match &u.user.org {
        OrgRef::School(c) => *c == d.from_school || *c == d.to_school,
        OrgRef::Authority(r) => d
            .steps
            .iter()
            .any(|s| s.party_type == "authority" && s.party == *r),
        OrgRef::National => false,
    }
}

fn after_approval(status: &str) -> bool {
    matches!(
        TransferStatus::parse(status),
        Some(
            TransferStatus::Approved
                | TransferStatus::FilePulled
                | TransferStatus::PaperSent
                | TransferStatus::Completed
        )
    )
}

/// Which forms apply to the caller now (the use cases still decide; this only hides the forms
/// that would surely be refused).
fn forms_for(u: &WebUser, d: &TransferDetail) -> Forms {
    let status = TransferStatus::parse(&d.status);
    let reviewing = status.is_some_and(TransferStatus::is_review);
    let my_school = match &u.user.org {
        OrgRef::School(c) if u.user.role.is_school() => Some(c.as_str()),
        _ => None,
    };
    let waiting = d.steps.iter().find(|s| s.state == "waiting");
    let review = reviewing
        && waiting.is_some_and(|s| {
            let mine = match &u.user.org {
                OrgRef::School(c) => s.party_type == "school" && s.party == *c,
                OrgRef::Authority(r) => s.party_type == "authority" && s.party == *r,
                OrgRef::National => false,
            };
            let role_fits = if s.party_type == "school" {
                u.user.role == Role::SchoolReviewer
            } else {
                u.user.role == Role::AuthorityAdmin
            };
            mine && role_fits
        });
    let receiving = my_school == Some(d.to_school.as_str());
    let sending = my_school == Some(d.from_school.as_str());
    Forms {
        review,
        withdraw: receiving && reviewing,
        pull: receiving && status == Some(TransferStatus::Approved),
        send: sending && status == Some(TransferStatus::FilePulled),
        receive: receiving && status == Some(TransferStatus::PaperSent),
        notice: after_approval(&d.status) && is_party(u, d),
        method: PAPER_METHODS[0].to_string(),
        ..Default::default()
    }
}

fn done_text(done: &str) -> &'static str {
    match done {
        "filed" => "转学申请已保存，已提交本校学籍主管领导（审核员）审核。",
        "approve" => "已保存审核结果（同意）。",
        "reject" => "审核完成（不同意），转学流程已终止，学生的在办业务已解除。",
        "withdraw" => "转学申请已撤销。",
        "pull" => "调档成功，学生已转入本校，已通知转出学校寄送纸质学籍档案。",
        "sent" => "已登记纸质学籍档案寄出，已通知转入学校接收。",
        "received" => "已确认接收纸质学籍档案，转学办理完毕。",
        _ => "",
    }
}

/// The detail page, with a success notice (`done`) or a refused form (`failed`).
async fn render(
    s: &AppState,
    u: &WebUser,
    id_s: &str,
    done: &str,
    failed: Option<(&'static str, Error, Forms)>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "转学明细", "").await;
    let Some(id) = parse_id(id_s) else {
        return Err(layout.fail(Error::not_found("该转学申请")));
    };
    let d = s
        .app
        .transfer(&u.user, id)
        .await
        .map_err(|e| layout.fail(e))?;
    let kind = TransferKind::parse(&d.kind).unwrap_or(TransferKind::CrossProvince);
    // Mark the query entry of the transfer's kind in the menu.
    let mut layout = Layout::new(
        &s.app,
        u,
        "转学明细",
        &format!("/transfers?kind={}", kind.as_str()),
    )
    .await;
    layout.retitle(format!("转学明细（{}）", d.student_name));

    let cal = s.app.calendar();
    let today = s.app.clock.today();
    let steps = d
        .steps
        .iter()
        .map(|st| {
            let (result, result_class) = match (st.decision.as_deref(), st.state.as_str()) {
                (Some("approve"), _) => ("同意", "ok"),
                (Some("reject"), _) => ("不同意", "bad"),
                (_, "waiting") => ("待审核", "wait"),
                (_, "pending") => ("未到达", "muted"),
                _ => ("—", "muted"),
            };
            let waiting = st.state == "waiting";
            let due_soon = waiting
                && st.overdue_days == 0
                && st
                    .due_date
                    .is_some_and(|dd| cal.working_days_between(today, dd) <= DUE_SOON_DAYS);
            StepView {
                party_label: st.party_label.clone(),
                party_name: st.party_name.clone(),
                result,
                result_class,
                opinion: st.opinion.clone().unwrap_or_default(),
                actor_name: st.actor_name.clone().unwrap_or_default(),
                docked: st.docked_system.clone().unwrap_or_default(),
                decided_at: st.decided_at.as_ref().map(fmt_time).unwrap_or_default(),
                began_on: st
                    .began_on
                    .map(|b| b.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
                due: if waiting || st.decision.is_some() {
                    due_cell(
                        st.due_date,
                        if waiting { st.overdue_days } else { 0 },
                        due_soon,
                    )
                } else {
                    due_cell(None, 0, false)
                },
                waiting,
            }
        })
        .collect();
    let waiting_text = match d.steps.iter().find(|s| s.state == "waiting") {
        Some(st) => match st.due_date {
            Some(due) if st.overdue_days > 0 => format!(
                "当前环节：待{}（{}）审核，办理期限{}，已逾期{}个工作日",
                st.party_label, st.party_name, due, st.overdue_days
            ),
            Some(due) => format!(
                "当前环节：待{}（{}）审核，请于{}前办理",
                st.party_label, st.party_name, due
            ),
            None => format!("当前环节：待{}（{}）审核", st.party_label, st.party_name),
        },
        None => String::new(),
    };
    let names = authority_names(&d);
    let name_of = |code: &str| names.get(code).cloned().unwrap_or_else(|| code.to_string());
    let mut f = forms_for(u, &d);
    let mut error = String::new();
    let mut status = StatusCode::OK;
    if let Some((form, err, typed)) = failed {
        status = status_of(&err);
        f.failed = form.to_string();
        f.opinion = typed.opinion;
        f.reason = typed.reason;
        if !typed.method.is_empty() {
            f.method = typed.method;
        }
        f.note = typed.note;
        match err.field {
            Some(field) if matches!(field, "opinion" | "reason" | "note" | "method") => {
                f.field = field.to_string();
                f.message = err.message;
            }
            _ => error = err.message,
        }
    }
    let status_class = match TransferStatus::parse(&d.status) {
        Some(TransferStatus::Rejected | TransferStatus::Withdrawn) => "st-ended",
        Some(TransferStatus::Completed) => "st-done",
        Some(st) if st.is_review() => "st-review",
        _ => "st-approved",
    };
    let pf = &d.paper_file;
    let page = DetailPage {
        kind_label: kind.label_zh(),
        status_class,
        from_authority_name: name_of(&d.from_authority),
        to_authority_name: name_of(&d.to_authority),
        to_place: grade_and_class(&grade_label(&d.to_grade), &d.to_class_name),
        from_grade: grade_label(&d.from_grade),
        created_at: fmt_time(&d.created_at),
        approved_at: d.approved_at.as_ref().map(fmt_time).unwrap_or_default(),
        pulled_at: d.pulled_at.as_ref().map(fmt_time).unwrap_or_default(),
        steps,
        evidence: d
            .evidence
            .iter()
            .map(|e| EvidenceView {
                href: format!("/transfers/{}/evidence/{}", d.id, e.id),
                filename: e.filename.clone(),
                size: if e.size >= 1024 * 1024 {
                    format!("{:.1} MB", e.size as f64 / 1024.0 / 1024.0)
                } else {
                    format!("{} KB", (e.size + 1023) / 1024)
                },
            })
            .collect(),
        paper: d.pulled_at.is_some(),
        paper_due: pf
            .due_date
            .map(|x| x.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        paper_overdue: pf.received_at.is_none() && pf.due_date.is_some_and(|x| x < today),
        paper_sent_at: pf.sent_at.as_ref().map(fmt_time).unwrap_or_default(),
        paper_method: pf.method.clone().unwrap_or_default(),
        paper_sent_note: pf.sent_note.clone().unwrap_or_default(),
        paper_received_at: pf.received_at.as_ref().map(fmt_time).unwrap_or_default(),
        paper_received_note: pf.received_note.clone().unwrap_or_default(),
        withdraw_reason: d.withdraw_reason.clone().unwrap_or_default(),
        waiting_text,
        back_href: format!("/transfers?kind={}", kind.as_str()),
        done: done_text(done).to_string(),
        error,
        f,
        methods: PAPER_METHODS.to_vec(),
        layout,
        d,
    };
    Ok((status, page).into_response())
}

pub async fn detail(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let id = path.map(|Path(p)| p).unwrap_or_default();
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    render(&s, &u, &id, &last_value(&pairs, "done"), None).await
}

/// The posted form's fields, and the path's transfer id.
struct Posted {
    id_s: String,
    id: Option<i64>,
    pairs: Pairs,
}

impl Posted {
    fn new(
        path: Result<Path<String>, PathRejection>,
        form: Result<Form<Pairs>, FormRejection>,
    ) -> Self {
        let id_s = path.map(|Path(p)| p).unwrap_or_default();
        Posted {
            id: parse_id(&id_s),
            id_s,
            pairs: form.map(|Form(p)| p).unwrap_or_default(),
        }
    }

    fn get(&self, k: &str) -> String {
        last_value(&self.pairs, k)
    }

    /// A textarea's value as typed (not trimmed).
    fn raw(&self, k: &str) -> String {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// After an action: back to the detail with the notice, or the detail with the refused form.
async fn finish(
    s: &AppState,
    u: &WebUser,
    p: &Posted,
    form: &'static str,
    done: &str,
    r: Result<(), Error>,
    typed: Forms,
) -> PageResult<Response> {
    match r {
        Ok(()) => Ok(Redirect::to(&format!("/transfers/{}?done={done}", p.id_s)).into_response()),
        Err(e) => render(s, u, &p.id_s, "", Some((form, e, typed))).await,
    }
}

/// Checks the CSRF token and the id; the error page when either is wrong.
async fn guard(s: &AppState, u: &WebUser, p: &Posted) -> Result<i64, PageResponseError> {
    let fail = |e: Error| async move {
        let layout = Layout::new(&s.app, u, "转学明细", "").await;
        PageResponseError(layout.fail(e).into_response())
    };
    if let Err(e) = check_csrf(u, &p.get("_csrf")) {
        return Err(fail(e).await);
    }
    match p.id {
        Some(id) => Ok(id),
        None => Err(fail(Error::not_found("该转学申请")).await),
    }
}

/// An already rendered refusal.
struct PageResponseError(Response);

macro_rules! guarded {
    ($s:expr, $u:expr, $p:expr) => {
        match guard(&$s, &$u, &$p).await {
            Ok(id) => id,
            Err(PageResponseError(r)) => return Ok(r),
        }
    };
}

pub async fn review(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let p = Posted::new(path, form);
    let id = guarded!(s, u, p);
    let opinion = p.raw("opinion");
    let typed = Forms {
        opinion: opinion.clone(),
        ..Default::default()
    };
    let r = match p.get("decision").as_str() {
        "approve" | "reject" if opinion.trim().chars().count() > 500 => {
            Err(Error::validation("opinion", "审核意见不超过500字"))
        }
        "approve" => s
            .app
            .review_transfer(&u.user, id, true, &opinion)
            .await
            .map(|_| ())
            .map_err(user_error),
        "reject" if opinion.trim().is_empty() => {
            Err(Error::new(ErrorCode::ReasonRequired, "不同意时须填写审核意见").at("opinion"))
        }
        "reject" => s
            .app
            .review_transfer(&u.user, id, false, &opinion)
            .await
            .map(|_| ())
            .map_err(user_error),
        _ => Err(Error::validation("opinion", "请点击“同意”或“不同意”按钮")),
    };
    let done = if p.get("decision") == "approve" {
        "approve"
    } else {
        "reject"
    };
    finish(&s, &u, &p, "review", done, r, typed).await
}

pub async fn withdraw(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let p = Posted::new(path, form);
    let id = guarded!(s, u, p);
    let reason = p.raw("reason");
    let r = if reason.trim().is_empty() {
        Err(Error::new(ErrorCode::ReasonRequired, "撤销时须填写撤销原因").at("reason"))
    } else if reason.trim().chars().count() > 500 {
        Err(Error::validation("reason", "撤销原因不超过500字"))
    } else {
        s.app
            .withdraw_transfer(&u.user, id, &reason)
            .await
            .map(|_| ())
            .map_err(user_error)
    };
    let typed = Forms {
        reason,
        ..Default::default()
    };
    finish(&s, &u, &p, "withdraw", "withdraw", r, typed).await
}

pub async fn pull(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let p = Posted::new(path, form);
    let id = guarded!(s, u, p);
    let r = s
        .app
        .pull_file(&u.user, id)
        .await
        .map(|_| ())
        .map_err(user_error);
    finish(&s, &u, &p, "pull", "pull", r, Forms::default()).await
}

pub async fn paper(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let p = Posted::new(path, form);
    let id = guarded!(s, u, p);
    let note = p.raw("note");
    let method = p.get("method");
    let action = p.get("action");
    let sent = action == "sent";
    let r = if !matches!(action.as_str(), "sent" | "received") {
        Err(Error::validation("note", "请点击“寄出”或“确认接收”按钮"))
    } else if sent && method.is_empty() {
        Err(Error::validation("method", "请选择寄送方式"))
    } else if sent && method.chars().count() > 20 {
        Err(Error::validation("method", "寄送方式不超过20字"))
    } else {
        s.app
            .paper_file(&u.user, id, sent, sent.then_some(method.as_str()), &note)
            .await
            .map(|_| ())
            .map_err(user_error)
    };
    let typed = Forms {
        note,
        method,
        ..Default::default()
    };
    let (form, done) = if sent {
        ("sent", "sent")
    } else {
        ("received", "received")
    };
    finish(&s, &u, &p, form, done, r, typed).await
}

/// 佐证材料 download.
pub async fn evidence(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<(String, String)>, PathRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "佐证材料", "").await;
    let (id, eid) = path.map(|Path(p)| p).unwrap_or_default();
    let (Some(id), Some(eid)) = (parse_id(&id), parse_id(&eid)) else {
        return Err(layout.fail(Error::not_found("该材料")));
    };
    let (filename, content_type, bytes) = s
        .app
        .transfer_evidence(&u.user, id, eid)
        .await
        .map_err(|e| layout.fail(e))?;
    let ext = match content_type.as_str() {
        "application/pdf" => "pdf",
        "image/png" => "png",
        _ => "jpg",
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"evidence-{eid}.{ext}\"; filename*=UTF-8''{}",
                    url_encode(&filename)
                ),
            ),
        ],
        bytes,
    )
        .into_response())
}

pub struct ApprovalLine {
    pub party_label: String,
    pub party_name: String,
    pub result: &'static str,
    pub date: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "transfer_notice.html")]
pub struct NoticePage {
    layout: Layout,
    id: i64,
    kind_label: &'static str,
    student_name: String,
    student_no: String,
    from_school_name: String,
    to_school_name: String,
    /// 转入年级和班级, e.g. 一年级（1）班.
    to_place: String,
    approvals: Vec<ApprovalLine>,
    report_by: String,
    issued_on: String,
    detail_href: String,
}

/// The date a student must report by: 10 working days from the day approval ended.
fn report_by(cal: &xueji_domain::calendar::WorkCalendar, approved_on: NaiveDate) -> NaiveDate {
    cal.due_date(approved_on, STEP_DEADLINE_DAYS)
}

/// 转学联系函: printable once approval has ended, for the parties only.
pub async fn notice(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "转学联系函", "").await;
    let id_s = path.map(|Path(p)| p).unwrap_or_default();
    let Some(id) = parse_id(&id_s) else {
        return Err(layout.fail(Error::not_found("该转学申请")));
    };
    let d = s
        .app
        .transfer(&u.user, id)
        .await
        .map_err(|e| layout.fail(e))?;
    if !is_party(&u, &d) {
        return Err(layout.fail(Error::forbidden(
            "转学联系函仅供转出、转入学校及其学籍主管部门查看打印",
        )));
    }
    if !after_approval(&d.status) {
        return Err(layout.fail(Error::new(
            ErrorCode::Conflict,
            format!("四方审核完成后才能打印转学联系函（当前{}）", d.status_label),
        )));
    }
    let kind = TransferKind::parse(&d.kind).unwrap_or(TransferKind::CrossProvince);
    let mut layout = Layout::new(
        &s.app,
        &u,
        "转学联系函",
        &format!("/transfers?kind={}", kind.as_str()),
    )
    .await;
    layout.retitle(format!("转学联系函（{}）", d.student_name));
    let cal = s.app.calendar();
    let approved_on = d
        .approved_at
        .as_ref()
        .and_then(|t| NaiveDate::parse_from_str(&fmt_date(t), "%Y-%m-%d").ok())
        .unwrap_or_else(|| s.app.clock.today());
    let page = NoticePage {
        layout,
        id: d.id,
        kind_label: kind_label(&d.kind),
        approvals: d
            .steps
            .iter()
            .map(|st| ApprovalLine {
                party_label: st.party_label.clone(),
                party_name: st.party_name.clone(),
                result: if st.decision.as_deref() == Some("approve") {
                    "同意"
                } else {
                    "—"
                },
                date: st.decided_at.as_ref().map(fmt_date).unwrap_or_default(),
            })
            .collect(),
        report_by: report_by(&cal, approved_on)
            .format("%Y年%-m月%-d日")
            .to_string(),
        issued_on: s.app.clock.today().format("%Y年%-m月%-d日").to_string(),
        detail_href: format!("/transfers/{}", d.id),
        to_place: grade_and_class(&grade_label(&d.to_grade), &d.to_class_name),
        student_name: d.student_name,
        student_no: d.student_no,
        from_school_name: d.from_school_name,
        to_school_name: d.to_school_name,
    };
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive_numbers() {
        assert_eq!(parse_id("12"), Some(12));
        assert_eq!(parse_id("0"), None);
        assert_eq!(parse_id("x"), None);
    }

    #[test]
    fn class_names_holding_their_grade_are_not_doubled() {
        assert_eq!(grade_and_class("一年级", "一年级（1）班"), "一年级（1）班");
        assert_eq!(grade_and_class("初一", "3班"), "初一3班");
    }

    #[test]
    fn notices_follow_approval() {
        assert!(after_approval("approved") && after_approval("completed"));
        assert!(!after_approval("out_school_review") && !after_approval("rejected"));
        assert_eq!(done_text("nonsense"), "");
        assert!(done_text("pull").contains("调档成功"));
    }

    #[test]
    fn report_date_counts_working_days() {
        let cal = xueji_domain::calendar::WorkCalendar::embedded();
        // Begun 2024-09-27: 09-29 is a make-up working day, 10-01…10-07 are holidays.
        let d = NaiveDate::from_ymd_opt(2024, 9, 27).unwrap();
        assert_eq!(
            report_by(&cal, d),
            NaiveDate::from_ymd_opt(2024, 10, 15).unwrap()
        );
    }
}
