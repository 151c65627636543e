//! 学籍注册 and 批量导入 pages of a school's administrator.
//!
//! - `GET/POST /students/register`: the single form; a refusal is shown beside its field and
//!   everything typed is kept; a 疑似重复 refusal offers the “确认不是同一人” box.
//! - `GET/POST /students/import`: upload an .xlsx; the validation runs as a background job whose
//!   progress `/static/import.js` polls from `/students/import/{job}/progress.json` (CSP forbids
//!   inline scripts; without JavaScript the page offers a refresh link). The finished job shows
//!   the row-by-row report, its .xlsx download, and a button that writes the valid rows (a second
//!   job on the same file, with its own progress).
//!
//! Jobs live in this process's memory, keyed by a random id and bound to the user who started
//! them; they are forgotten an hour after they start (the file is kept only that long).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use xueji_app::import::{
    Commit, ImportOptions, ImportPhase, ImportProgress, ImportReport, XLSX_MIME, XlsxSource,
    import_report_xlsx,
};
use xueji_app::registration::{NewStudent, Refs};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::Grade;
use xueji_domain::{Error, ErrorCode};

use super::{Layout, PageResult, user_error};
use crate::AppState;
use crate::session::{WebUser, check_csrf};

/// How long a finished or abandoned import job is kept.
const JOB_TTL: Duration = Duration::from_secs(3600);
/// Report rows shown on the page (the .xlsx report has them all).
const SHOWN_ERRORS: usize = 1000;

/// The caller's school code when the caller is its administrator.
fn own_school(u: &WebUser) -> Result<String, Error> {
    match (&u.user.org, u.user.role) {
        (OrgRef::School(code), Role::SchoolAdmin) => Ok(code.clone()),
        _ => Err(Error::forbidden("学籍注册和导入须由本校的学籍管理员办理")),
    }
}

// ---------------------------------------------------------------------------------------------
// 学籍注册.

pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
    pub disabled: bool,
}

fn opt(value: impl Into<String>, label: impl Into<String>, chosen: &str) -> Opt {
    let value = value.into();
    Opt {
        selected: value == chosen,
        label: label.into(),
        disabled: false,
        value,
    }
}

/// What the form holds, as typed.
#[derive(Default, serde::Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub gender: String,
    #[serde(default)]
    pub birth_date: String,
    #[serde(default)]
    pub ethnicity: String,
    #[serde(default)]
    pub id_type: String,
    #[serde(default)]
    pub id_number: String,
    #[serde(default)]
    pub grade: String,
    #[serde(default)]
    pub class_id: String,
    #[serde(default)]
    pub confirm_suspected: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "records_register.html")]
pub struct RegisterPage {
    layout: Layout,
    school_name: String,
    v: RegisterForm,
    genders: Vec<Opt>,
    ethnicities: Vec<Opt>,
    id_types: Vec<Opt>,
    grades: Vec<Opt>,
    classes: Vec<Opt>,
    /// The field at fault (`name`, `gender`, …, `class_id`); empty: shown on top.
    field: String,
    message: String,
    /// A 疑似重复 refusal: offer the confirmation box.
    suspected: bool,
}

async fn register_page(
    s: &AppState,
    u: &WebUser,
    v: RegisterForm,
    error: Option<Error>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "学籍注册", "/students/register").await;
    let code = own_school(u).map_err(|e| layout.fail(e))?;
    let school = s
        .app
        .school(&u.user, &code)
        .await
        .map_err(|e| layout.fail(e))?;
    let refs = Refs::load(&s.app).await.map_err(|e| layout.fail(e))?;
    let classes = s
        .app
        .classes(&u.user, &code)
        .await
        .map_err(|e| layout.fail(e))?;
    let ethnicities = std::iter::once(opt("", "请选择", &v.ethnicity))
        .chain(
            refs.ethnicities()
                .iter()
                .map(|(c, n)| opt(c.clone(), n.clone(), &v.ethnicity)),
        )
        .collect();
    let id_type_chosen = if v.id_type.is_empty() {
        "1"
    } else {
        v.id_type.as_str()
    };
    let id_types = refs
        .id_types()
        .iter()
        .map(|(c, n)| opt(c.clone(), n.clone(), id_type_chosen))
        .collect();
    let grades = std::iter::once(opt("", "请选择", &v.grade))
        .chain(
            Grade::ALL
                .iter()
                .filter(|g| school.grades.contains(&g.code()))
                .map(|g| opt(g.code(), g.label_zh(), &v.grade)),
        )
        .collect();
    let classes = std::iter::once(opt("", "请选择", &v.class_id))
        .chain(classes.into_iter().map(|c| {
            let mut o = opt(
                c.id.to_string(),
                format!("{}（{}/{}人）", c.name, c.enrolled, c.capacity),
                &v.class_id,
            );
            o.disabled = c.enrolled >= c.capacity && !o.selected;
            o
        }))
        .collect();
    let genders = vec![
        opt("", "请选择", &v.gender),
        opt("male", "男", &v.gender),
        opt("female", "女", &v.gender),
    ];
    let status = error
        .as_ref()
        .map(super::status_of)
        .unwrap_or(StatusCode::OK);
    let suspected = error
        .as_ref()
        .is_some_and(|e| e.code == ErrorCode::SuspectedDuplicate);
    let page = RegisterPage {
        layout,
        school_name: school.name,
        genders,
        ethnicities,
        id_types,
        grades,
        classes,
        field: error
            .as_ref()
            .and_then(|e| e.field)
            .unwrap_or_default()
            .to_string(),
        message: error.map(|e| e.message).unwrap_or_default(),
        suspected,
        v,
    };
    Ok((status, page).into_response())
}

pub async fn register_form(State(s): State<AppState>, u: WebUser) -> PageResult<Response> {
    register_page(&s, &u, RegisterForm::default(), None).await
}

pub async fn register(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<RegisterForm>, FormRejection>,
) -> PageResult<Response> {
    let Ok(Form(v)) = form else {
        let layout = Layout::new(&s.app, &u, "学籍注册", "/students/register").await;
        return Err(layout.fail(Error::validation("name", "表单内容无效，请刷新页面后重试")));
    };
    if let Err(e) = check_csrf(&u, &v._csrf) {
        let layout = Layout::new(&s.app, &u, "学籍注册", "/students/register").await;
        return Err(layout.fail(e));
    }
    let Ok(class_id) = v.class_id.trim().parse::<i64>() else {
        return register_page(&s, &u, v, Some(Error::validation("class_id", "请选择班级"))).await;
    };
    let req = NewStudent {
        name: v.name.clone(),
        gender: v.gender.clone(),
        birth_date: v.birth_date.clone(),
        ethnicity: v.ethnicity.clone(),
        id_type: v.id_type.clone(),
        id_number: v.id_number.clone(),
        grade: v.grade.clone(),
        class_id,
        confirm_suspected: v.confirm_suspected == "1",
    };
    match s.app.register_student(&u.user, &req).await {
        Ok(r) => Ok(Redirect::to(&format!(
            "/students/{}",
            super::url_encode(&r.student.summary.student_no)
        ))
        .into_response()),
        Err(e) => {
            let e = user_error(e);
            if matches!(e.code, ErrorCode::Internal | ErrorCode::Forbidden) {
                let layout = Layout::new(&s.app, &u, "学籍注册", "/students/register").await;
                return Err(layout.fail(e));
            }
            register_page(&s, &u, v, Some(e)).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 批量导入.

struct Job {
    user_id: i64,
    school: String,
    source: XlsxSource,
    confirm_suspected: bool,
    started: Instant,
    phase: ImportPhase,
    done: u64,
    total: u64,
    running: bool,
    /// The last finished run (validation, then possibly the commit).
    report: Option<Arc<ImportReport>>,
    error: Option<String>,
}

static JOBS: LazyLock<Mutex<HashMap<String, Job>>> = LazyLock::new(Default::default);

fn jobs() -> std::sync::MutexGuard<'static, HashMap<String, Job>> {
    JOBS.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_job_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs an import in the background, reporting progress into the job.
fn spawn_run(s: &AppState, u: &WebUser, id: String, commit: Commit) {
    let (source, school, confirm_suspected) = {
        let mut all = jobs();
        let Some(job) = all.get_mut(&id) else {
            return;
        };
        job.running = true;
        job.done = 0;
        job.total = 0;
        job.phase = ImportPhase::Validating;
        job.error = None;
        (
            job.source.clone(),
            job.school.clone(),
            job.confirm_suspected,
        )
    };
    let app = s.app.clone();
    let user = u.user.clone();
    tokio::spawn(async move {
        let key = id.clone();
        let progress = move |p: ImportProgress| {
            if let Some(job) = jobs().get_mut(&key) {
                job.phase = p.phase;
                job.done = p.done;
                job.total = p.total;
            }
        };
        let opts = ImportOptions {
            commit,
            confirm_suspected,
        };
        let r = app
            .import_students(&user, &school, source, opts, &progress)
            .await;
        if let Some(job) = jobs().get_mut(&id) {
            job.running = false;
            match r {
                Ok(report) => job.report = Some(Arc::new(report)),
                Err(e) => job.error = Some(user_error(e).message),
            }
        }
    });
}

#[derive(Template, WebTemplate)]
#[template(path = "records_import.html")]
pub struct ImportPage {
    layout: Layout,
    school_name: String,
    error: String,
}

pub async fn import_form(State(s): State<AppState>, u: WebUser) -> PageResult<Response> {
    import_form_page(&s, &u, None).await
}

async fn import_form_page(s: &AppState, u: &WebUser, error: Option<Error>) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "批量导入", "/students/import").await;
    let code = own_school(u).map_err(|e| layout.fail(e))?;
    let school = s
        .app
        .school(&u.user, &code)
        .await
        .map_err(|e| layout.fail(e))?;
    let status = error
        .as_ref()
        .map(super::status_of)
        .unwrap_or(StatusCode::OK);
    let page = ImportPage {
        layout,
        school_name: school.name,
        error: error.map(|e| e.message).unwrap_or_default(),
    };
    Ok((status, page).into_response())
}

/// 上传并校验: keeps the file for the job and starts the validation.
pub async fn upload(
    State(s): State<AppState>,
    u: WebUser,
    mp: Result<Multipart, MultipartRejection>,
) -> PageResult<Response> {
    let code = match own_school(&u) {
        Ok(c) => c,
        Err(e) => {
            let layout = Layout::new(&s.app, &u, "批量导入", "/students/import").await;
            return Err(layout.fail(e));
        }
    };
    let too_large = || {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "文件过大（上限{}MB）：请拆分为多个文件后分别导入",
                crate::MAX_BODY / (1024 * 1024)
            ),
        )
    };
    let Ok(mut mp) = mp else {
        return import_form_page(
            &s,
            &u,
            Some(Error::validation("file", "请选择要上传的.xlsx文件")),
        )
        .await;
    };
    let (mut csrf, mut confirm, mut bytes) = (String::new(), false, Vec::new());
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => return import_form_page(&s, &u, Some(too_large())).await,
        };
        match field.name().unwrap_or_default() {
            "_csrf" => csrf = field.text().await.unwrap_or_default(),
            "confirm_suspected" => confirm = field.text().await.unwrap_or_default() == "1",
            "file" => match field.bytes().await {
                Ok(b) => bytes = b.to_vec(),
                Err(_) => return import_form_page(&s, &u, Some(too_large())).await,
            },
            _ => {}
        }
    }
    if let Err(e) = check_csrf(&u, &csrf) {
        let layout = Layout::new(&s.app, &u, "批量导入", "/students/import").await;
        return Err(layout.fail(e));
    }
    if bytes.is_empty() {
        return import_form_page(
            &s,
            &u,
            Some(Error::validation("file", "请选择填写好的.xlsx文件")),
        )
        .await;
    }
    let id = new_job_id();
    {
        let mut all = jobs();
        all.retain(|_, j| j.running || j.started.elapsed() < JOB_TTL);
        all.insert(
            id.clone(),
            Job {
                user_id: u.user.id,
                school: code,
                source: XlsxSource::Bytes(Arc::new(bytes)),
                confirm_suspected: confirm,
                started: Instant::now(),
                phase: ImportPhase::Validating,
                done: 0,
                total: 0,
                running: false,
                report: None,
                error: None,
            },
        );
    }
    spawn_run(&s, &u, id.clone(), Commit::Never);
    Ok(Redirect::to(&format!("/students/import/{id}")).into_response())
}

/// A copy of a job's state.
struct JobView {
    running: bool,
    phase: ImportPhase,
    done: u64,
    total: u64,
    report: Option<Arc<ImportReport>>,
    error: Option<String>,
    confirm_suspected: bool,
}

/// The job's state if it is the caller's.
fn job_state(u: &WebUser, id: &str) -> Option<JobView> {
    let all = jobs();
    let j = all.get(id).filter(|j| j.user_id == u.user.id)?;
    Some(JobView {
        running: j.running,
        phase: j.phase,
        done: j.done,
        total: j.total,
        report: j.report.clone(),
        error: j.error.clone(),
        confirm_suspected: j.confirm_suspected,
    })
}

pub struct ErrorRow {
    pub row: u32,
    pub column: String,
    pub cell: String,
    pub message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "records_import_job.html")]
pub struct JobPage {
    layout: Layout,
    id: String,
    running: bool,
    writing: bool,
    done: u64,
    total: u64,
    error: String,
    report: Option<Arc<ImportReport>>,
    rows: Vec<ErrorRow>,
    more_errors: u64,
    /// Valid rows can be written (validated, not yet committed).
    can_commit: bool,
    confirm_suspected: bool,
}

fn gone(layout: &Layout) -> super::PageError {
    layout.fail(Error::not_found("该导入任务（任务保留1小时，请重新上传）"))
}

pub async fn job(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "导入结果", "/students/import").await;
    let id = path.map(|Path(p)| p).unwrap_or_default();
    let Some(JobView {
        running,
        phase,
        done,
        total,
        report,
        error,
        confirm_suspected: confirm,
    }) = job_state(&u, &id)
    else {
        return Err(gone(&layout));
    };
    let rows: Vec<ErrorRow> = report
        .as_ref()
        .map(|r| {
            r.errors
                .iter()
                .take(SHOWN_ERRORS)
                .map(|e| ErrorRow {
                    row: e.row,
                    column: e.column.clone(),
                    cell: e.cell.clone(),
                    message: e.message.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let more_errors = report
        .as_ref()
        .map(|r| r.errors_total.saturating_sub(rows.len() as u64))
        .unwrap_or(0);
    let can_commit = !running && report.as_ref().is_some_and(|r| !r.committed && r.valid > 0);
    let page = JobPage {
        layout,
        id,
        running,
        writing: phase == ImportPhase::Writing,
        done,
        total,
        error: error.unwrap_or_default(),
        report,
        rows,
        more_errors,
        can_commit,
        confirm_suspected: confirm,
    };
    Ok(page.into_response())
}

/// The small JSON the progress script polls.
pub async fn progress(u: WebUser, path: Result<Path<String>, PathRejection>) -> Response {
    let id = path.map(|Path(p)| p).unwrap_or_default();
    match job_state(&u, &id) {
        Some(j) => axum::Json(serde_json::json!({
            "phase": if j.phase == ImportPhase::Writing { "writing" } else { "validating" },
            "done": j.done,
            "total": j.total,
            "finished": !j.running,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "finished": true })),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
pub struct CommitForm {
    #[serde(default)]
    _csrf: String,
}

/// 写入有效行: a second run on the same file that writes the rows found valid.
pub async fn commit(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<CommitForm>, FormRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "导入结果", "/students/import").await;
    let id = path.map(|Path(p)| p).unwrap_or_default();
    let token = form.map(|Form(f)| f._csrf).unwrap_or_default();
    check_csrf(&u, &token).map_err(|e| layout.fail(e))?;
    let Some(j) = job_state(&u, &id) else {
        return Err(gone(&layout));
    };
    if j.running {
        return Err(layout.fail(Error::new(
            ErrorCode::Conflict,
            "导入任务正在进行，请等待完成",
        )));
    }
    spawn_run(&s, &u, id.clone(), Commit::ValidRows);
    Ok(Redirect::to(&format!("/students/import/{id}")).into_response())
}

fn xlsx(bytes: Vec<u8>, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, XLSX_MIME.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The report of the job's last run as .xlsx (导入报告).
pub async fn report_xlsx(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "导入结果", "/students/import").await;
    let id = path.map(|Path(p)| p).unwrap_or_default();
    let Some(report) = job_state(&u, &id).and_then(|j| j.report) else {
        return Err(gone(&layout));
    };
    let bytes = tokio::task::spawn_blocking(move || import_report_xlsx(&report))
        .await
        .map_err(|_| layout.fail(ErrorCode::Internal))?
        .map_err(|e| layout.fail(e))?;
    Ok(xlsx(bytes, "import-report.xlsx"))
}

/// The school's import template (下载模板).
pub async fn template(State(s): State<AppState>, u: WebUser) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "批量导入", "/students/import").await;
    let code = own_school(&u).map_err(|e| layout.fail(e))?;
    let bytes = s
        .app
        .student_template(&u.user, &code)
        .await
        .map_err(|e| layout.fail(e))?;
    Ok(xlsx(bytes, &format!("students-template-{code}.xlsx")))
}

const IMPORT_JS: &str = include_str!("../../static/import.js");

/// The progress script (a static file: CSP forbids inline scripts).
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        IMPORT_JS,
    )
        .into_response()
}
