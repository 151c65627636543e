//! 问题学籍处理 and 升级/毕业 pages: `GET /problems` (the list, filtered), `GET /problems/{id}`
//! (the record, its actions, and the form that applies to the caller: the school's 佐证 / 变更 /
//! 删除 with evidence files, or the authority's 审核), the posts of those forms, the evidence
//! download, and `GET/POST /promotion` (升级毕业 with the 在办业务清理 list).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use xueji_app::problems::{
    self as pr, ProblemActionRequest, ProblemDecision, ProblemDetail, ProblemFilter,
};
use xueji_app::promotion::{PromotionBlocker, PromotionReport, PromotionRequest};
use xueji_app::registration::school_year_of;
use xueji_app::transfers::{Evidence, MAX_EVIDENCE_BYTES, MAX_EVIDENCE_FILES};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::{Error, ErrorCode};

use super::{
    Layout, PageResult, Pager, fmt_time, grade_label, last_value, parse_page, status_of,
    url_encode, user_error,
};
use crate::AppState;
use crate::session::{WebUser, check_csrf};

type Pairs = Vec<(String, String)>;

/// A `<select>` option.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn opts(values: &[(&str, &str)], chosen: &str) -> Vec<Opt> {
    values
        .iter()
        .map(|(v, l)| Opt {
            value: v.to_string(),
            label: l.to_string(),
            selected: *v == chosen,
        })
        .collect()
}

pub struct ProblemRow {
    pub href: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub status_class: &'static str,
    pub student_no: String,
    pub student_name: String,
    pub id_masked: String,
    pub school_name: String,
    pub detail: String,
    pub pending: &'static str,
    pub created_at: String,
}

fn status_class(status: &str) -> &'static str {
    match status {
        "open" => "st-review",
        "pending" => "st-approved",
        _ => "st-done",
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "problems.html")]
pub struct ListPage {
    layout: Layout,
    kinds: Vec<Opt>,
    statuses: Vec<Opt>,
    q: String,
    todo: bool,
    /// An authority: offers the 待我审核 filter.
    authority: bool,
    error: String,
    rows: Vec<ProblemRow>,
    pager: Pager,
}

pub async fn list(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "问题学籍", "/problems").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let v = |k: &str| last_value(&pairs, k);
    let (kind, status, q, todo) = (v("kind"), v("status"), v("q"), v("todo") == "1");
    let mut error: Option<Error> = None;
    let page = parse_page(&v("page"), &v("per_page")).unwrap_or_else(|e| {
        error = Some(e);
        xueji_app::paging::Page::default()
    });
    let filter = ProblemFilter {
        kind: (!kind.is_empty()).then(|| kind.clone()),
        status: (!status.is_empty()).then(|| status.clone()),
        school: None,
        todo: todo.then_some(true),
        q: (!q.is_empty()).then(|| q.clone()),
    };
    let (items, total) = if error.is_some() {
        (vec![], 0)
    } else {
        match s.app.problems(&u.user, &filter, page).await {
            Ok(p) => (p.items, p.total),
            Err(e) => {
                let e = user_error(e);
                if e.code == ErrorCode::Internal {
                    return Err(layout.fail(e));
                }
                error = Some(e);
                (vec![], 0)
            }
        }
    };
    let todo_s = if todo { "1" } else { "" };
    let keep = [
        ("kind", kind.as_str()),
        ("status", status.as_str()),
        ("q", q.as_str()),
        ("todo", todo_s),
    ];
    let pager = Pager::new("/problems", &keep, page.page, page.per_page, total);
    let rows = items
        .into_iter()
        .map(|p| ProblemRow {
            href: format!("/problems/{}", p.id),
            kind: pr::kind_label_zh(&p.kind),
            status: pr::status_label_zh(&p.status),
            status_class: status_class(&p.status),
            student_no: p.student_no,
            student_name: p.student_name,
            id_masked: p.id_number_masked,
            school_name: p.school_name,
            detail: p.detail,
            pending: p
                .pending_action
                .as_deref()
                .map(pr::action_label_zh)
                .unwrap_or(""),
            created_at: fmt_time(&p.created_at),
        })
        .collect();
    let status_code = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let mut kinds = vec![("", "全部")];
    kinds.extend(pr::KINDS.iter().map(|k| (*k, pr::kind_label_zh(k))));
    let page = ListPage {
        layout,
        kinds: opts(&kinds, &kind),
        statuses: opts(
            &[
                ("", "全部"),
                ("open", "待处理"),
                ("pending", "待主管部门审核"),
                ("resolved", "已处理"),
            ],
            &status,
        ),
        q,
        todo,
        authority: u.user.role == Role::AuthorityAdmin,
        error: error.map(|e| e.message).unwrap_or_default(),
        rows,
        pager,
    };
    Ok((status_code, page).into_response())
}

pub struct ActionView {
    pub action: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub change: String,
    pub requested: String,
    pub decided: String,
    pub opinion: String,
    pub evidence: Vec<(String, String)>,
}

/// What the school's action form holds (kept on a refusal).
#[derive(Default)]
pub struct ActionForm {
    pub action: String,
    pub reason: String,
    pub name: String,
    pub id_number: String,
    pub opinion: String,
    /// The field at fault and the message beside it (`action`, `reason`, `name`, `id_number`,
    /// `evidence`, `opinion`); empty field: shown on top.
    pub field: String,
    pub message: String,
    /// The status of the refusal shown (422, 409, …).
    pub status: Option<StatusCode>,
}

#[derive(Template, WebTemplate)]
#[template(path = "problems_detail.html")]
pub struct DetailPage {
    layout: Layout,
    d: ProblemDetail,
    kind: &'static str,
    status: &'static str,
    status_class: &'static str,
    resolution: &'static str,
    created_at: String,
    resolved_at: String,
    student_href: String,
    related_href: String,
    actions: Vec<ActionView>,
    /// The school's administrator may act now.
    can_act: bool,
    /// The supervising authority may decide now.
    can_decide: bool,
    action_opts: Vec<Opt>,
    f: ActionForm,
    done: String,
}

async fn detail_page(
    s: &AppState,
    u: &WebUser,
    id: i64,
    f: ActionForm,
    done: &str,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "问题学籍处理", "/problems").await;
    let d = s
        .app
        .problem(&u.user, id)
        .await
        .map_err(|e| layout.fail(e))?;
    let sm = &d.summary;
    let own_school = matches!(&u.user.org, OrgRef::School(c) if *c == sm.school);
    let can_act = own_school
        && u.user.role == Role::SchoolAdmin
        && sm.status == "open"
        && sm.student_status != "deleted";
    let can_decide = sm.status == "pending"
        && u.user.role == Role::AuthorityAdmin
        && matches!(&u.user.org, OrgRef::Authority(r) if *r == sm.authority);
    let actions = d
        .actions
        .iter()
        .map(|a| {
            let mut change = vec![];
            if let Some(n) = a.new_name.as_deref().filter(|n| *n != a.old_name) {
                change.push(format!("姓名：{} → {}", a.old_name, n));
            }
            if let Some(n) = a
                .new_id_number_masked
                .as_deref()
                .filter(|n| *n != a.old_id_number_masked)
            {
                change.push(format!("证件号码：{} → {}", a.old_id_number_masked, n));
            }
            ActionView {
                action: pr::action_label_zh(&a.action),
                status: pr::action_status_label_zh(&a.status),
                reason: a.reason.clone(),
                change: change.join("；"),
                requested: format!("{} {}", a.requested_by, fmt_time(&a.requested_at)),
                decided: match (&a.decided_by, &a.decided_at) {
                    (Some(by), Some(at)) => format!("{by} {}", fmt_time(at)),
                    _ => String::new(),
                },
                opinion: a.opinion.clone().unwrap_or_default(),
                evidence: a
                    .evidence
                    .iter()
                    .map(|e| {
                        (
                            format!("/problems/{}/evidence/{}", d.summary.id, e.id),
                            e.filename.clone(),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let status = f.status.unwrap_or(StatusCode::OK);
    let page = DetailPage {
        kind: pr::kind_label_zh(&sm.kind),
        status: pr::status_label_zh(&sm.status),
        status_class: status_class(&sm.status),
        resolution: sm
            .resolution
            .as_deref()
            .map(pr::resolution_label_zh)
            .unwrap_or(""),
        created_at: fmt_time(&sm.created_at),
        resolved_at: sm.resolved_at.as_ref().map(fmt_time).unwrap_or_default(),
        student_href: format!("/students/{}", url_encode(&sm.student_no)),
        related_href: d
            .related_student_no
            .as_deref()
            .map(|n| format!("/students/{}", url_encode(n)))
            .unwrap_or_default(),
        actions,
        can_act,
        can_decide,
        action_opts: opts(
            &[
                ("confirm", "佐证（信息无误，提供证明材料）"),
                ("correct", "变更（更正姓名或证件号码）"),
                ("delete", "删除（误录的学籍）"),
            ],
            if f.action.is_empty() {
                "confirm"
            } else {
                &f.action
            },
        ),
        f,
        done: done.to_string(),
        layout,
        d,
    };
    Ok((status, page).into_response())
}

fn parse_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| *n > 0)
}

pub async fn detail(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let id = path.ok().and_then(|Path(p)| parse_id(&p));
    let Some(id) = id else {
        let layout = Layout::new(&s.app, &u, "问题学籍处理", "/problems").await;
        return Err(layout.fail(Error::not_found("该问题学籍")));
    };
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let done = match last_value(&pairs, "done").as_str() {
        "requested" => "已提交，等待学籍主管部门审核",
        "approve" => "已同意，处理已生效",
        "refuse" => "已退回学校",
        _ => "",
    };
    detail_page(&s, &u, id, ActionForm::default(), done).await
}

/// What the multipart action form carried.
#[derive(Default)]
struct Submitted {
    csrf: String,
    f: ActionForm,
    id_type: String,
    files: Vec<Evidence>,
    problem: Option<String>,
}

async fn read_action_form(mut mp: Multipart) -> Result<Submitted, Error> {
    let broken = || {
        Error::validation(
            "evidence",
            "提交的表单内容不完整或过大（佐证材料每个不超过2MB，最多5个），请返回重新填写",
        )
    };
    let mut out = Submitted::default();
    while let Some(mut field) = mp.next_field().await.map_err(|_| broken())? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "evidence" {
            let filename = field.file_name().unwrap_or_default().trim().to_string();
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(|_| broken())? {
                if bytes.len() + chunk.len() > MAX_EVIDENCE_BYTES {
                    out.problem = Some(format!("材料“{filename}”超过2MB，请压缩后上传"));
                    bytes.clear();
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            if bytes.is_empty() {
                continue;
            }
            if out.files.len() >= MAX_EVIDENCE_FILES {
                out.problem = Some(format!("佐证材料最多{MAX_EVIDENCE_FILES}个文件"));
                continue;
            }
            out.files.push(Evidence {
                filename: if filename.is_empty() {
                    "佐证材料".into()
                } else {
                    filename
                },
                bytes,
            });
            continue;
        }
        let text = field.text().await.map_err(|_| broken())?;
        let slot = match name.as_str() {
            "_csrf" => &mut out.csrf,
            "action" => &mut out.f.action,
            "reason" => &mut out.f.reason,
            "name" => &mut out.f.name,
            "id_type" => &mut out.id_type,
            "id_number" => &mut out.f.id_number,
            _ => continue,
        };
        *slot = text;
    }
    Ok(out)
}

fn fail_form(mut f: ActionForm, e: Error) -> ActionForm {
    f.status = Some(status_of(&e));
    f.field = e.field.unwrap_or_default().to_string();
    f.message = e.message;
    f
}

/// The school's 佐证 / 变更 / 删除 (multipart: the evidence files ride along).
pub async fn act(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    mp: Result<Multipart, MultipartRejection>,
) -> PageResult<Response> {
    let Some(id) = path.ok().and_then(|Path(p)| parse_id(&p)) else {
        let layout = Layout::new(&s.app, &u, "问题学籍处理", "/problems").await;
        return Err(layout.fail(Error::not_found("该问题学籍")));
    };
    let sub = match mp {
        Ok(mp) => read_action_form(mp).await,
        Err(_) => Err(Error::validation(
            "evidence",
            "表单须以 multipart/form-data 方式提交，请从问题学籍页面提交",
        )),
    };
    let sub = match sub {
        Ok(sub) => sub,
        Err(e) => return detail_page(&s, &u, id, fail_form(ActionForm::default(), e), "").await,
    };
    if let Err(e) = check_csrf(&u, &sub.csrf) {
        let layout = Layout::new(&s.app, &u, "问题学籍处理", "/problems").await;
        return Err(layout.fail(e));
    }
    if let Some(msg) = sub.problem.clone() {
        return detail_page(
            &s,
            &u,
            id,
            fail_form(sub.f, Error::validation("evidence", msg)),
            "",
        )
        .await;
    }
    let correct = sub.f.action == "correct";
    let some = |s: &str| (correct && !s.trim().is_empty()).then(|| s.trim().to_string());
    let req = ProblemActionRequest {
        action: sub.f.action.clone(),
        reason: sub.f.reason.clone(),
        name: some(&sub.f.name),
        id_type: some(&sub.id_type),
        id_number: some(&sub.f.id_number),
        version: None,
    };
    match s
        .app
        .request_problem_action(&u.user, id, &req, sub.files)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/problems/{id}?done=requested")).into_response()),
        Err(e) => {
            let e = user_error(e);
            if matches!(
                e.code,
                ErrorCode::Internal | ErrorCode::NotFound | ErrorCode::Forbidden
            ) {
                let layout = Layout::new(&s.app, &u, "问题学籍处理", "/problems").await;
                return Err(layout.fail(e));
            }
            detail_page(&s, &u, id, fail_form(sub.f, e), "").await
        }
    }
}

#[derive(serde::Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    opinion: String,
}

/// The authority's 同意 / 不同意.
pub async fn decide(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "问题学籍处理", "/problems").await;
    let Some(id) = path.ok().and_then(|Path(p)| parse_id(&p)) else {
        return Err(layout.fail(Error::not_found("该问题学籍")));
    };
    let Ok(Form(form)) = form else {
        return Err(layout.fail(Error::validation(
            "opinion",
            "表单内容无效，请刷新页面后重试",
        )));
    };
    check_csrf(&u, &form._csrf).map_err(|e| layout.fail(e))?;
    let req = ProblemDecision {
        decision: form.decision.clone(),
        opinion: form.opinion.clone(),
    };
    match s.app.decide_problem_action(&u.user, id, &req).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/problems/{id}?done={}",
            if form.decision == "approve" {
                "approve"
            } else {
                "refuse"
            }
        ))
        .into_response()),
        Err(e) => {
            let e = user_error(e);
            if matches!(
                e.code,
                ErrorCode::Internal | ErrorCode::NotFound | ErrorCode::Forbidden
            ) {
                return Err(layout.fail(e));
            }
            let f = ActionForm {
                opinion: form.opinion,
                field: e.field.unwrap_or_default().to_string(),
                status: Some(status_of(&e)),
                message: e.message,
                ..Default::default()
            };
            detail_page(&s, &u, id, f, "").await
        }
    }
}

pub async fn evidence(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<(String, String)>, PathRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "佐证材料", "/problems").await;
    let (id, eid) = path.map(|Path(p)| p).unwrap_or_default();
    let (Some(id), Some(eid)) = (parse_id(&id), parse_id(&eid)) else {
        return Err(layout.fail(Error::not_found("该材料")));
    };
    let (filename, content_type, bytes) = s
        .app
        .problem_evidence(&u.user, id, eid)
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
                    "attachment; filename=\"problem-evidence-{eid}.{ext}\"; filename*=UTF-8''{}",
                    url_encode(&filename)
                ),
            ),
        ],
        bytes,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// 升级 / 毕业.

pub struct BlockerRow {
    pub href: String,
    pub student_no: String,
    pub name: String,
    pub school: String,
    pub school_name: String,
    pub grade: String,
    pub business: &'static str,
}

fn business_label(b: &str) -> &'static str {
    match b {
        "transfer" => "转学",
        "problem_record" => "问题学籍处理",
        "change" | "status_change" => "学籍异动",
        _ => "在办业务",
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "promotion.html")]
pub struct PromotionPage {
    layout: Layout,
    year: String,
    region: String,
    error: String,
    error_field: String,
    report: Option<PromotionReport>,
    blockers: Vec<BlockerRow>,
    /// Whether the clean-up list was read (a year was given).
    checked: bool,
}

fn blocker_rows(list: Vec<PromotionBlocker>) -> Vec<BlockerRow> {
    list.into_iter()
        .map(|b| BlockerRow {
            href: format!("/students/{}", url_encode(&b.student_no)),
            grade: b.grade.as_deref().map(grade_label).unwrap_or_default(),
            business: business_label(&b.business),
            student_no: b.student_no,
            name: b.name,
            school: b.school,
            school_name: b.school_name,
        })
        .collect()
}

async fn promotion_page(
    s: &AppState,
    u: &WebUser,
    year: String,
    region: String,
    outcome: Option<Result<PromotionReport, Error>>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "升级毕业", "/promotion").await;
    if !matches!(u.user.role, Role::AuthorityAdmin | Role::NationalAdmin) {
        return Err(layout.fail(Error::forbidden("升级和毕业由学籍主管部门办理")));
    }
    let mut error: Option<Error> = None;
    let mut report = None;
    match outcome {
        Some(Ok(r)) => report = Some(r),
        Some(Err(e)) => error = Some(e),
        None => {}
    }
    let year_num = year.trim().parse::<i32>().ok();
    let mut blockers = vec![];
    let mut checked = false;
    if let Some(y) = year_num {
        let r = (!region.trim().is_empty()).then_some(region.as_str());
        match s.app.promotion_blockers(&u.user, y, r).await {
            Ok(list) => {
                checked = true;
                blockers = blocker_rows(list);
            }
            Err(e) => {
                error.get_or_insert(user_error(e));
            }
        }
    } else if !year.is_empty() {
        error.get_or_insert(Error::validation("year", "学年应为四位数字，如2026"));
    }
    let status = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let page = PromotionPage {
        layout,
        year,
        region,
        error_field: error
            .as_ref()
            .and_then(|e| e.field)
            .unwrap_or_default()
            .to_string(),
        error: error.map(|e| e.message).unwrap_or_default(),
        report,
        blockers,
        checked,
    };
    Ok((status, page).into_response())
}

/// The form, and with `?year=` the clean-up list of that year.
pub async fn promotion(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let mut year = last_value(&pairs, "year");
    if year.is_empty() {
        year = school_year_of(s.app.clock.today()).to_string();
    }
    promotion_page(&s, &u, year, last_value(&pairs, "region"), None).await
}

#[derive(serde::Deserialize)]
pub struct PromotionForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    year: String,
    #[serde(default)]
    region: String,
}

/// 执行升级: runs the year for the caller's jurisdiction (or the region typed).
pub async fn run_promotion(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<PromotionForm>, FormRejection>,
) -> PageResult<Response> {
    let Ok(Form(form)) = form else {
        let layout = Layout::new(&s.app, &u, "升级毕业", "/promotion").await;
        return Err(layout.fail(Error::validation("year", "表单内容无效，请刷新页面后重试")));
    };
    if let Err(e) = check_csrf(&u, &form._csrf) {
        let layout = Layout::new(&s.app, &u, "升级毕业", "/promotion").await;
        return Err(layout.fail(e));
    }
    let outcome = match form.year.trim().parse::<i32>() {
        Err(_) => Err(Error::validation("year", "学年应为四位数字，如2026")),
        Ok(year) => {
            let req = PromotionRequest {
                year,
                region: (!form.region.trim().is_empty()).then(|| form.region.trim().to_string()),
            };
            s.app
                .promote_as(&u.user, &req, &|_| {})
                .await
                .map_err(user_error)
        }
    };
    promotion_page(&s, &u, form.year, form.region, Some(outcome)).await
}
