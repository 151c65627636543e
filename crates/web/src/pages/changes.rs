//! 学籍异动 pages: `GET /changes` (the work list and query), `GET|POST /students/{no}/changes/new`
//! (one form with a kind select, evidence upload), `GET /changes/{id}` (the detail with the
//! 同意 / 不同意 / 撤销 forms that apply to the caller), the actions those forms post to, and the
//! evidence download.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::multipart::Multipart;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use xueji_app::changes::{ChangeDetail, ChangeFilter, NewChange};
use xueji_app::transfers::{Evidence, MAX_EVIDENCE_BYTES, MAX_EVIDENCE_FILES};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::change::{ChangeKind, ChangeStatus};
use xueji_domain::{Error, ErrorCode};

use super::students::Opt;
use super::{
    Layout, PageResult, Pager, fmt_time, gender_label, grade_label, last_value, parse_page,
    status_of, url_encode, user_error,
};
use crate::AppState;
use crate::session::{WebUser, check_csrf};

type Pairs = Vec<(String, String)>;

const MENU: &str = "/changes";

pub struct Row {
    pub href: String,
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub student_no: String,
    pub student_name: String,
    pub school_name: String,
    pub created_at: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "changes.html")]
pub struct ListPage {
    layout: Layout,
    rows: Vec<Row>,
    pager: Pager,
    kinds: Vec<Opt>,
    statuses: Vec<Opt>,
    /// `todo` (waiting for me) or `all`.
    view: String,
    student: String,
    /// The 新建 button when the list is one student's and the caller may file.
    new_href: String,
    error: String,
}

fn options(all: &[(&str, &str)], chosen: &str) -> Vec<Opt> {
    let mut v = vec![Opt {
        value: String::new(),
        label: "全部".into(),
        selected: chosen.is_empty(),
    }];
    v.extend(all.iter().map(|(value, label)| Opt {
        value: value.to_string(),
        label: label.to_string(),
        selected: *value == chosen,
    }));
    v
}

fn kind_pairs() -> Vec<(&'static str, &'static str)> {
    ChangeKind::ALL
        .iter()
        .map(|k| (k.as_str(), k.label_zh()))
        .collect()
}

fn status_pairs() -> Vec<(&'static str, &'static str)> {
    ChangeStatus::ALL
        .iter()
        .map(|s| (s.as_str(), s.label_zh()))
        .collect()
}

/// 学籍异动: reviewers and authorities land on what waits for them; everyone may see all.
pub async fn list(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "学籍异动", MENU).await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let get = |k: &str| last_value(&pairs, k);
    let reviews = matches!(u.user.role, Role::SchoolReviewer | Role::AuthorityAdmin);
    let student = get("student");
    let view = match get("view").as_str() {
        "todo" => "todo",
        "all" => "all",
        _ if reviews && student.is_empty() => "todo",
        _ => "all",
    }
    .to_string();
    let (kind, status) = (get("kind"), get("status"));
    let mut error = String::new();
    let page = parse_page(&get("page"), &get("per_page")).unwrap_or_else(|e| {
        error = e.message;
        Default::default()
    });
    let f = ChangeFilter {
        status: Some(status.clone()),
        kind: Some(kind.clone()),
        school: None,
        student: Some(student.clone()),
        todo: Some(view == "todo"),
    };
    let listed = match s.app.changes(&u.user, &f, page).await {
        Ok(p) => p,
        Err(e) => {
            error = user_error(e).message;
            xueji_app::paging::Paged {
                items: vec![],
                total: 0,
            }
        }
    };
    let rows = listed
        .items
        .into_iter()
        .map(|c| Row {
            href: format!("/changes/{}", c.id),
            id: c.id,
            kind: c.kind_label,
            status: c.status_label,
            student_no: c.student_no,
            student_name: c.student_name,
            school_name: c.school_name,
            created_at: fmt_time(&c.created_at),
        })
        .collect();
    let filters = [
        ("view", view.as_str()),
        ("kind", kind.as_str()),
        ("status", status.as_str()),
        ("student", student.as_str()),
    ];
    let new_href = if !student.is_empty() && u.user.role == Role::SchoolAdmin {
        format!("/students/{}/changes/new", url_encode(&student))
    } else {
        String::new()
    };
    let page = ListPage {
        pager: Pager::new(MENU, &filters, page.page, page.per_page, listed.total),
        rows,
        kinds: options(&kind_pairs(), &kind),
        statuses: options(&status_pairs(), &status),
        view,
        student,
        new_href,
        error,
        layout,
    };
    Ok(page.into_response())
}

/// What the filing form holds, as typed.
#[derive(Default, Clone)]
pub struct Values {
    pub kind: String,
    pub reason: String,
    pub from_date: String,
    pub until_date: String,
    pub to_grade: String,
    pub to_class_id: String,
    pub special_class_id: String,
    pub new_name: String,
    pub new_id_number: String,
    pub new_gender: String,
    pub new_birth_date: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "changes_new.html")]
pub struct NewPage {
    layout: Layout,
    student_no: String,
    student_name: String,
    current: String,
    v: Values,
    kinds: Vec<Opt>,
    grades: Vec<Opt>,
    classes: Vec<Opt>,
    genders: Vec<Opt>,
    /// The field at fault and what is wrong with it; `error` when it belongs to no field.
    field: String,
    message: String,
    error: String,
    max_files: usize,
}

async fn render_new(
    s: &AppState,
    u: &WebUser,
    student_no: &str,
    v: Values,
    failure: Option<Error>,
) -> PageResult<Response> {
    let mut layout = Layout::new(&s.app, u, "学籍异动申请", MENU).await;
    let st = s
        .app
        .student(&u.user, student_no)
        .await
        .map_err(|e| layout.fail(e))?;
    let holds =
        matches!(&u.user.org, OrgRef::School(c) if st.school.as_deref() == Some(c.as_str()));
    if u.user.role != Role::SchoolAdmin || !holds {
        return Err(layout.fail(Error::forbidden(
            "学籍异动申请须由学生所在学校的学籍管理员办理",
        )));
    }
    layout.retitle(format!("学籍异动申请（{}）", st.summary.name));
    let classes = match &st.school {
        Some(code) => s.app.classes(&u.user, code).await.unwrap_or_default(),
        None => vec![],
    };
    let mut class_opts = vec![Opt {
        value: String::new(),
        label: "（不指定，由学校另行分班）".into(),
        selected: v.to_class_id.is_empty(),
    }];
    class_opts.extend(classes.iter().map(|c| Opt {
        value: c.id.to_string(),
        label: format!("{}（{}/{}人）", c.name, c.enrolled, c.capacity),
        selected: v.to_class_id == c.id.to_string(),
    }));
    let mut grade_opts = vec![Opt {
        value: String::new(),
        label: "（原年级）".into(),
        selected: v.to_grade.is_empty(),
    }];
    grade_opts.extend(xueji_domain::ids::Grade::ALL.iter().map(|g| Opt {
        value: g.code(),
        label: g.label_zh().into(),
        selected: v.to_grade == g.code(),
    }));
    let genders = options(&[("male", "男"), ("female", "女")], &v.new_gender);
    let mut kinds = options(&kind_pairs(), &v.kind);
    kinds[0].label = "请选择".into();
    let (mut field, mut message, mut error, mut status) =
        (String::new(), String::new(), String::new(), StatusCode::OK);
    if let Some(e) = failure {
        status = status_of(&e);
        match e.field {
            Some(f) if f != "kind" => {
                field = f.to_string();
                message = e.message;
            }
            _ => error = e.message,
        }
    }
    let current = format!(
        "{} · {} · {}{}",
        xueji_app::students::status_label_zh(&st.summary.status),
        st.summary
            .grade
            .as_deref()
            .map(grade_label)
            .unwrap_or_default(),
        st.summary.class_name.clone().unwrap_or_default(),
        st.summary
            .open_business
            .as_ref()
            .map(|_| " · 有在办业务")
            .unwrap_or_default()
    );
    let page = NewPage {
        student_no: st.summary.student_no.clone(),
        student_name: format!(
            "{}（{}）",
            st.summary.name,
            gender_label(&st.summary.gender)
        ),
        current,
        v,
        kinds,
        grades: grade_opts,
        classes: class_opts,
        genders,
        field,
        message,
        error,
        max_files: MAX_EVIDENCE_FILES,
        layout,
    };
    Ok((status, page).into_response())
}

pub async fn new_form(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let no = path.map(|Path(p)| p).unwrap_or_default();
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let v = Values {
        kind: last_value(&pairs, "kind"),
        ..Default::default()
    };
    render_new(&s, &u, &no, v, None).await
}

/// The form's fields and files, from a multipart upload or a plain form.
async fn read_submission(s: &AppState, req: Request) -> Result<(Pairs, Vec<Evidence>), Error> {
    let broken = || {
        Error::validation(
            "evidence",
            format!(
                "提交的表单内容不完整或过大（佐证材料每个不超过2MB，最多{MAX_EVIDENCE_FILES}个）"
            ),
        )
    };
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !ct.starts_with("multipart/form-data") {
        let Form(pairs) = Form::<Pairs>::from_request(req, s)
            .await
            .map_err(|_| Error::validation("reason", "表单内容有误，请从申请页面重新提交"))?;
        return Ok((pairs, vec![]));
    }
    let mut mp = Multipart::from_request(req, s)
        .await
        .map_err(|_| broken())?;
    let (mut pairs, mut files) = (vec![], vec![]);
    while let Some(mut field) = mp.next_field().await.map_err(|_| broken())? {
        let name = field.name().unwrap_or_default().to_string();
        if name != "evidence" {
            pairs.push((name, field.text().await.map_err(|_| broken())?));
            continue;
        }
        let filename = field.file_name().unwrap_or_default().trim().to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|_| broken())? {
            if bytes.len() + chunk.len() > MAX_EVIDENCE_BYTES {
                return Err(Error::validation(
                    "evidence",
                    format!("材料“{filename}”超过2MB，请压缩后重新上传"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !bytes.is_empty() {
            files.push(Evidence {
                filename: if filename.is_empty() {
                    "佐证材料".into()
                } else {
                    filename
                },
                bytes,
            });
        }
    }
    Ok((pairs, files))
}

pub async fn submit(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> PageResult<Response> {
    let no = path.map(|Path(p)| p).unwrap_or_default();
    let (pairs, files) = match read_submission(&s, req).await {
        Ok(x) => x,
        Err(e) => return render_new(&s, &u, &no, Values::default(), Some(e)).await,
    };
    let get = |k: &str| last_value(&pairs, k);
    if let Err(e) = check_csrf(&u, &get("_csrf")) {
        let layout = Layout::new(&s.app, &u, "学籍异动申请", MENU).await;
        return Err(layout.fail(e));
    }
    let v = Values {
        kind: get("kind"),
        reason: get("reason"),
        from_date: get("from_date"),
        until_date: get("until_date"),
        to_grade: get("to_grade"),
        to_class_id: get("to_class_id"),
        special_class_id: get("special_class_id"),
        new_name: get("new_name"),
        new_id_number: get("new_id_number"),
        new_gender: get("new_gender"),
        new_birth_date: get("new_birth_date"),
    };
    let date = |field: &'static str, s: &str| -> Result<Option<chrono::NaiveDate>, Error> {
        if s.is_empty() {
            return Ok(None);
        }
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| Error::validation(field, "日期格式应为YYYY-MM-DD"))
    };
    let class = |field: &'static str, s: &str| -> Result<Option<i64>, Error> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<i64>()
            .map(Some)
            .map_err(|_| Error::validation(field, "班级编号应为数字"))
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let built = (|| -> Result<NewChange, Error> {
        if v.kind.is_empty() {
            return Err(Error::validation("kind", "请选择异动类型"));
        }
        let special = v.kind == ChangeKind::SpecialEducation.as_str();
        Ok(NewChange {
            kind: v.kind.clone(),
            reason: v.reason.clone(),
            from_date: date("from_date", &v.from_date)?,
            until_date: date("until_date", &v.until_date)?,
            to_grade: opt(&v.to_grade),
            to_class_id: if special {
                class("special_class_id", &v.special_class_id)?
            } else {
                class("to_class_id", &v.to_class_id)?
            },
            new_name: opt(&v.new_name),
            new_id_type: None,
            new_id_number: opt(&v.new_id_number),
            new_gender: opt(&v.new_gender),
            new_birth_date: opt(&v.new_birth_date),
            evidence: vec![],
        })
    })();
    let result = match built {
        Ok(req) => s
            .app
            .file_change(&u.user, &no, &req, files)
            .await
            .map_err(user_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => Ok(Redirect::to(&format!("/changes/{}?done=filed", d.id)).into_response()),
        Err(mut e) => {
            if v.kind == ChangeKind::SpecialEducation.as_str() && e.field == Some("to_class_id") {
                e.field = Some("special_class_id");
            }
            render_new(&s, &u, &no, v, Some(e)).await
        }
    }
}

pub struct StepView {
    pub label: String,
    pub party_name: String,
    pub result: &'static str,
    pub result_class: &'static str,
    pub opinion: String,
    pub actor_name: String,
    pub decided_at: String,
    pub waiting: bool,
}

pub struct Fact {
    pub label: &'static str,
    pub before: String,
    pub after: String,
}

pub struct FileView {
    pub href: String,
    pub filename: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "changes_detail.html")]
pub struct DetailPage {
    layout: Layout,
    d: ChangeDetail,
    created_at: String,
    applied_at: String,
    steps: Vec<StepView>,
    facts: Vec<Fact>,
    files: Vec<FileView>,
    review: bool,
    withdraw: bool,
    done: &'static str,
    error: String,
    field: String,
    message: String,
    opinion: String,
    reason: String,
    status_class: &'static str,
}

fn done_text(done: &str) -> &'static str {
    match done {
        "filed" => "申请已提交，待本校学籍主管领导（审核员）审核。",
        "approve" => "已保存审核结果（同意）。",
        "reject" => "审核完成（不同意），流程已终止，学生的在办业务已解除。",
        "withdraw" => "申请已撤销，学生的在办业务已解除。",
        _ => "",
    }
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What the request changes, before and after, in words.
fn facts_of(d: &ChangeDetail) -> Vec<Fact> {
    let b = &d.before;
    let p = &d.payload;
    let mut out = vec![];
    let mut push = |label, before: String, after: Option<String>| {
        if let Some(after) = after {
            out.push(Fact {
                label,
                before,
                after,
            });
        }
    };
    push(
        "休学期限",
        String::new(),
        p.from_date.map(|f| {
            format!(
                "{f} 至 {}",
                p.until_date.map(|u| u.to_string()).unwrap_or_default()
            )
        }),
    );
    push(
        "年级",
        grade_label(&text(&b["grade"])),
        p.to_grade.as_deref().map(grade_label),
    );
    push(
        "班级编号",
        text(&b["class_id"]),
        p.to_class_id.map(|c| c.to_string()),
    );
    push("转入学校", text(&b["school"]), p.to_school.clone());
    push("姓名", text(&b["name"]), p.new_name.clone());
    push(
        "身份证件号码",
        text(&b["id_number_masked"]),
        p.new_id_number.clone(),
    );
    push(
        "性别",
        gender_label(&text(&b["gender"])).into(),
        p.new_gender.as_deref().map(|g| gender_label(g).to_string()),
    );
    push(
        "出生日期",
        text(&b["birth_date"]),
        p.new_birth_date.map(|d| d.to_string()),
    );
    out
}

async fn render_detail(
    s: &AppState,
    u: &WebUser,
    id_s: &str,
    done: &str,
    failure: Option<(Error, String, String)>,
) -> PageResult<Response> {
    let mut layout = Layout::new(&s.app, u, "异动明细", MENU).await;
    let id = id_s.parse::<i64>().ok().filter(|n| *n > 0);
    let d = match id {
        Some(id) => s
            .app
            .change(&u.user, id)
            .await
            .map_err(|e| layout.fail(e))?,
        None => return Err(layout.fail(Error::not_found("该异动申请"))),
    };
    layout.retitle(format!("异动明细（{}）", d.student_name));
    let status = ChangeStatus::parse(&d.status);
    let waiting = d.steps.iter().find(|st| st.state == "waiting");
    let review = waiting.is_some_and(|st| match &u.user.org {
        OrgRef::School(c) => {
            st.step == "school" && st.party == *c && u.user.role == Role::SchoolReviewer
        }
        OrgRef::Authority(r) => {
            st.step == "authority" && st.party == *r && u.user.role == Role::AuthorityAdmin
        }
        OrgRef::National => false,
    });
    let withdraw = status.is_some_and(ChangeStatus::is_pending)
        && u.user.role == Role::SchoolAdmin
        && matches!(&u.user.org, OrgRef::School(c) if *c == d.school);
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
            StepView {
                label: st.party_label.clone(),
                party_name: st.party_name.clone(),
                result,
                result_class,
                opinion: st.opinion.clone().unwrap_or_default(),
                actor_name: st.actor_name.clone().unwrap_or_default(),
                decided_at: st.decided_at.as_ref().map(fmt_time).unwrap_or_default(),
                waiting: st.state == "waiting",
            }
        })
        .collect();
    let (mut error, mut field, mut message, mut opinion, mut reason, mut code) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        StatusCode::OK,
    );
    if let Some((e, typed_opinion, typed_reason)) = failure {
        code = status_of(&e);
        opinion = typed_opinion;
        reason = typed_reason;
        match e.field {
            Some(f @ ("opinion" | "reason")) => {
                field = f.to_string();
                message = e.message;
            }
            _ => error = e.message,
        }
    }
    let status_class = match status {
        Some(ChangeStatus::Refused | ChangeStatus::Withdrawn) => "st-ended",
        Some(ChangeStatus::Applied) => "st-done",
        _ => "st-review",
    };
    let page = DetailPage {
        created_at: fmt_time(&d.created_at),
        applied_at: d.applied_at.as_ref().map(fmt_time).unwrap_or_default(),
        facts: facts_of(&d),
        files: d
            .evidence
            .iter()
            .map(|e| FileView {
                href: format!("/changes/{}/evidence/{}", d.id, e.id),
                filename: e.filename.clone(),
            })
            .collect(),
        steps,
        review,
        withdraw,
        done: done_text(done),
        error,
        field,
        message,
        opinion,
        reason,
        status_class,
        layout,
        d,
    };
    Ok((code, page).into_response())
}

pub async fn detail(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let id = path.map(|Path(p)| p).unwrap_or_default();
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    render_detail(&s, &u, &id, &last_value(&pairs, "done"), None).await
}

/// 同意 / 不同意 from the detail page.
pub async fn review(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    act(s, u, path, form, "review").await
}

/// 撤销 from the detail page.
pub async fn withdraw(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    act(s, u, path, form, "withdraw").await
}

async fn act(
    s: AppState,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
    what: &str,
) -> PageResult<Response> {
    let id_s = path.map(|Path(p)| p).unwrap_or_default();
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let get = |k: &str| last_value(&pairs, k);
    if let Err(e) = check_csrf(&u, &get("_csrf")) {
        let layout = Layout::new(&s.app, &u, "异动明细", MENU).await;
        return Err(layout.fail(e));
    }
    let Some(id) = id_s.parse::<i64>().ok().filter(|n| *n > 0) else {
        let layout = Layout::new(&s.app, &u, "异动明细", MENU).await;
        return Err(layout.fail(Error::not_found("该异动申请")));
    };
    let (opinion, reason) = (get("opinion"), get("reason"));
    let (result, done) = if what == "withdraw" {
        let r = if reason.is_empty() {
            Err(Error::new(ErrorCode::ReasonRequired, "撤销时须填写撤销原因").at("reason"))
        } else {
            s.app
                .withdraw_change(&u.user, id, &reason)
                .await
                .map(|_| ())
                .map_err(user_error)
        };
        (r, "withdraw")
    } else {
        match get("decision").as_str() {
            "approve" => (
                s.app
                    .review_change(&u.user, id, true, &opinion)
                    .await
                    .map(|_| ())
                    .map_err(user_error),
                "approve",
            ),
            "reject" => (
                s.app
                    .review_change(&u.user, id, false, &opinion)
                    .await
                    .map(|_| ())
                    .map_err(user_error),
                "reject",
            ),
            _ => (
                Err(Error::validation("opinion", "请点击“同意”或“不同意”按钮")),
                "",
            ),
        }
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/changes/{id}?done={done}")).into_response()),
        Err(e) => render_detail(&s, &u, &id_s, "", Some((e, opinion, reason))).await,
    }
}

/// 佐证材料 download.
pub async fn evidence(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<(String, String)>, PathRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "佐证材料", MENU).await;
    let (id, eid) = path.map(|Path(p)| p).unwrap_or_default();
    let (Ok(id), Ok(eid)) = (id.parse::<i64>(), eid.parse::<i64>()) else {
        return Err(layout.fail(Error::not_found("该材料")));
    };
    let (filename, content_type, bytes) = s
        .app
        .change_evidence(&u.user, id, eid)
        .await
        .map_err(|e| layout.fail(e))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"evidence-{eid}\"; filename*=UTF-8''{}",
                    url_encode(&filename)
                ),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_texts_and_option_lists() {
        assert!(done_text("filed").contains("待本校"));
        assert_eq!(done_text("x"), "");
        let o = options(&kind_pairs(), "dropout");
        assert!(o[0].value.is_empty() && o.iter().any(|x| x.selected && x.label == "辍学"));
        assert_eq!(o.len(), ChangeKind::ALL.len() + 1);
    }
}
