//! 跨省转学 / 省内转学 lists: `GET /transfers` (查询, with `GET /transfers/export.xlsx`),
//! `GET/POST /transfers/review` (审核: the work list and the toolbar's 同意 / 不同意 acting on every
//! selected row, each decision recorded one by one), `GET/POST /transfers/pull` (调档), and
//! `POST /transfers/open` (the toolbar's 明细 button).
//!
//! The `kind` query parameter (`cross_province` | `intra_province`) picks the menu the page
//! belongs to and filters the list by it.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use xueji_app::paging::Page;
use xueji_app::transfers::{TransferFilter, TransferSummary};
use xueji_domain::access::Role;
use xueji_domain::transfer::{TransferKind, TransferStatus};
use xueji_domain::{Error, ErrorCode};

use super::{
    Layout, PageResult, Pager, fmt_time, grade_label, last_value, parse_page, query_string,
    status_of, url_encode, user_error,
};
use crate::AppState;
use crate::session::WebUser;

type Pairs = Vec<(String, String)>;

/// Most rows one toolbar action may carry (a page shows at most 500).
const MAX_BATCH: usize = 500;

// ---------------------------------------------------------------------------------------------
// Shared by the transfer pages.

/// The `kind` of a transfer page; absent means 跨省转学 (the menu's first entry).
pub(super) fn parse_kind(s: &str) -> Result<TransferKind, Error> {
    if s.is_empty() {
        return Ok(TransferKind::CrossProvince);
    }
    TransferKind::parse(s).ok_or_else(|| {
        Error::validation(
            "kind",
            "转学类型参数无效，请从左侧菜单重新进入（跨省转学或省内转学）",
        )
    })
}

pub(super) use crate::session::check_csrf;

/// A due date as work lists show it: the date, its mark, and how late it is.
pub struct Due {
    pub date: String,
    /// `overdue`, `due-soon` or empty.
    pub class: &'static str,
    /// 逾期N个工作日, or empty.
    pub late: String,
}

pub(super) fn due_cell(due: Option<NaiveDate>, overdue_days: i64, due_soon: bool) -> Due {
    let Some(d) = due else {
        return Due {
            date: String::new(),
            class: "",
            late: String::new(),
        };
    };
    let (class, late) = if overdue_days > 0 {
        ("overdue", format!("逾期{overdue_days}个工作日"))
    } else if due_soon {
        ("due-soon", "即将到期".to_string())
    } else {
        ("", String::new())
    };
    Due {
        date: d.format("%Y-%m-%d").to_string(),
        class,
        late,
    }
}

pub(super) fn kind_label(kind: &str) -> &'static str {
    TransferKind::parse(kind)
        .map(TransferKind::label_zh)
        .unwrap_or("转学")
}

/// One row of a transfer table.
pub struct Row {
    pub id: i64,
    pub href: String,
    pub kind: &'static str,
    pub status: String,
    pub student_no: String,
    pub student_name: String,
    pub from_school: String,
    pub from_school_name: String,
    pub to_school: String,
    pub to_school_name: String,
    pub to_grade: String,
    /// 当前环节: who acts now, or the status once the reviews are over.
    pub waiting: String,
    /// A review step waits (otherwise a table with a status column shows 当前环节 as —).
    pub reviewing: bool,
    pub due: Due,
    pub created_at: String,
    pub checked: bool,
}

pub(super) fn row_of(t: TransferSummary, checked: &[i64]) -> Row {
    let st = TransferStatus::parse(&t.status);
    // While a step waits, 当前环节 says who acts; the status column only says 审核中.
    let status = match st {
        Some(s) if s.is_review() => "审核中".to_string(),
        Some(s) => s.short_label_zh().to_string(),
        None => t.status_label.clone(),
    };
    let waiting = match (&t.waiting_label, st) {
        (Some(w), _) => w.clone(),
        (None, Some(s)) => s.label_zh().to_string(),
        (None, None) => t.status_label.clone(),
    };
    Row {
        href: format!("/transfers/{}", t.id),
        kind: kind_label(&t.kind),
        reviewing: t.waiting_label.is_some(),
        waiting,
        status,
        due: due_cell(t.due_date, t.overdue_days, t.due_soon),
        checked: checked.contains(&t.id),
        id: t.id,
        student_no: t.student_no,
        student_name: t.student_name,
        from_school: t.from_school,
        from_school_name: t.from_school_name,
        to_school: t.to_school,
        to_school_name: t.to_school_name,
        to_grade: grade_label(&t.to_grade),
        created_at: fmt_time(&t.created_at),
    }
}

/// What happened to one selected row of a toolbar action.
pub struct BatchResult {
    pub id: i64,
    pub href: String,
    pub student_name: String,
    pub ok: bool,
    pub message: String,
}

/// The outcome of a toolbar action over several rows.
pub struct Batch {
    pub action: &'static str,
    pub ok: usize,
    pub failed: usize,
    pub results: Vec<BatchResult>,
}

/// The selected row ids of a posted table (`id` repeated); a malformed one is an error.
fn selected_ids(pairs: &Pairs) -> Result<Vec<i64>, Error> {
    let mut ids = vec![];
    for (k, v) in pairs {
        if k == "id" {
            let id = v
                .trim()
                .parse::<i64>()
                .map_err(|_| Error::validation("id", "选中的记录无效，请刷新页面后重新选择"))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if ids.len() > MAX_BATCH {
        return Err(Error::validation(
            "id",
            format!("一次最多办理{MAX_BATCH}条，请分批选择"),
        ));
    }
    Ok(ids)
}

/// The student of a transfer the caller may see, for a result line when the action failed.
async fn student_of(s: &AppState, u: &WebUser, id: i64) -> String {
    match s.app.transfer(&u.user, id).await {
        Ok(d) => d.student_name,
        Err(_) => String::new(),
    }
}

fn list_path(path: &str, kind: TransferKind) -> String {
    format!("{path}?kind={}", kind.as_str())
}

/// A `<select>` option.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

// ---------------------------------------------------------------------------------------------
// 审核

#[derive(Template, WebTemplate)]
#[template(path = "transfer_review.html")]
pub struct ReviewPage {
    layout: Layout,
    kind: &'static str,
    kind_label: &'static str,
    /// `all` or empty (待审核).
    tab: String,
    todo_href: String,
    all_href: String,
    back: String,
    rows: Vec<Row>,
    pager: Pager,
    opinion: String,
    error: Option<String>,
    error_field: String,
    batch: Option<Batch>,
    /// The 明细 button was pressed with nothing selected.
    select_hint: bool,
    selectable: bool,
    show_status: bool,
}

fn may_review(role: Role) -> bool {
    matches!(role, Role::SchoolReviewer | Role::AuthorityAdmin)
}

struct ReviewState {
    opinion: String,
    error: Option<Error>,
    checked: Vec<i64>,
    batch: Option<Batch>,
}

async fn render_review(
    s: &AppState,
    u: &WebUser,
    pairs: &Pairs,
    st: ReviewState,
) -> PageResult<Response> {
    let kind_s = last_value(pairs, "kind");
    let menu = format!(
        "/transfers/review?kind={}",
        parse_kind(&kind_s).map(|k| k.as_str()).unwrap_or("")
    );
    let layout = Layout::new(&s.app, u, "转学审核", &menu).await;
    let kind = parse_kind(&kind_s).map_err(|e| layout.fail(e))?;
    let mut layout = layout;
    layout.retitle(format!("{}审核", kind.label_zh()));
    if !may_review(u.user.role) {
        return Err(layout.fail(Error::forbidden(
            "转学审核由学校学籍主管领导（审核员）和学籍主管部门办理",
        )));
    }
    let tab = if last_value(pairs, "tab") == "all" {
        "all".to_string()
    } else {
        String::new()
    };
    let page = parse_page(&last_value(pairs, "page"), "").map_err(|e| layout.fail(e))?;
    let filter = TransferFilter {
        kind: Some(kind.as_str().to_string()),
        todo: Some(tab.is_empty()),
        ..Default::default()
    };
    let list = s
        .app
        .transfers(&u.user, &filter, page)
        .await
        .map_err(|e| layout.fail(e))?;
    let keep = [("kind", kind.as_str()), ("tab", tab.as_str())];
    let pager = Pager::new(
        "/transfers/review",
        &keep,
        page.page,
        page.per_page,
        list.total,
    );
    let back = format!("/transfers/review{}", query_string(&keep));
    let status = st.error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let page = ReviewPage {
        kind: kind.as_str(),
        kind_label: kind.label_zh(),
        todo_href: list_path("/transfers/review", kind),
        all_href: format!("{}&tab=all", list_path("/transfers/review", kind)),
        tab,
        back,
        rows: list
            .items
            .into_iter()
            .map(|t| row_of(t, &st.checked))
            .collect(),
        pager,
        opinion: st.opinion,
        error_field: st
            .error
            .as_ref()
            .and_then(|e| e.field)
            .unwrap_or_default()
            .to_string(),
        error: st.error.map(|e| e.message),
        batch: st.batch,
        select_hint: last_value(pairs, "hint") == "select",
        selectable: true,
        show_status: false,
        layout,
    };
    Ok((status, page).into_response())
}

pub async fn review_list(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    render_review(
        &s,
        &u,
        &pairs,
        ReviewState {
            opinion: String::new(),
            error: None,
            checked: vec![],
            batch: None,
        },
    )
    .await
}

/// The toolbar's 同意 / 不同意: one opinion, every selected transfer decided one by one.
pub async fn review_batch(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let v = |k: &str| last_value(&pairs, k);
    let opinion = pairs
        .iter()
        .rev()
        .find(|(k, _)| k == "opinion")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut st = ReviewState {
        opinion: opinion.clone(),
        error: None,
        checked: vec![],
        batch: None,
    };
    if let Err(e) = check_csrf(&u, &v("_csrf")) {
        let layout = Layout::new(&s.app, &u, "转学审核", "").await;
        return Err(layout.fail(e));
    }
    let approve = match v("decision").as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            st.error = Some(Error::validation("decision", "请点击“同意”或“不同意”按钮"));
            return render_review(&s, &u, &pairs, st).await;
        }
    };
    let ids = match selected_ids(&pairs) {
        Ok(ids) => ids,
        Err(e) => {
            st.error = Some(e);
            return render_review(&s, &u, &pairs, st).await;
        }
    };
    st.checked = ids.clone();
    if ids.is_empty() {
        st.error = Some(Error::validation(
            "id",
            "请先在列表中选中要审核的转学申请（可多选）",
        ));
        return render_review(&s, &u, &pairs, st).await;
    }
    if !approve && opinion.trim().is_empty() {
        st.error =
            Some(Error::new(ErrorCode::ReasonRequired, "不同意时须填写审核意见").at("opinion"));
        return render_review(&s, &u, &pairs, st).await;
    }
    if opinion.trim().chars().count() > 500 {
        st.error = Some(Error::validation("opinion", "审核意见不超过500字"));
        return render_review(&s, &u, &pairs, st).await;
    }
    let mut results = vec![];
    for id in ids {
        let r = s.app.review_transfer(&u.user, id, approve, &opinion).await;
        results.push(match r {
            Ok(d) => BatchResult {
                id,
                href: format!("/transfers/{id}"),
                student_name: d.student_name,
                ok: true,
                message: if approve {
                    format!("已同意，{}", d.status_label)
                } else {
                    "已不同意，流程已终止".to_string()
                },
            },
            Err(e) => BatchResult {
                id,
                href: format!("/transfers/{id}"),
                student_name: student_of(&s, &u, id).await,
                ok: false,
                message: user_error(e).message,
            },
        });
    }
    let ok = results.iter().filter(|r| r.ok).count();
    st.batch = Some(Batch {
        action: if approve { "同意" } else { "不同意" },
        ok,
        failed: results.len() - ok,
        results,
    });
    // The decided rows leave the work list; nothing stays selected.
    st.checked.clear();
    st.opinion.clear();
    render_review(&s, &u, &pairs, st).await
}

// ---------------------------------------------------------------------------------------------
// 调档

/// A smaller table under the main one (files awaiting the paper file …).
pub struct Section {
    pub title: &'static str,
    pub rows: Vec<Row>,
    pub total: i64,
    pub more_href: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "transfer_pull.html")]
pub struct PullPage {
    layout: Layout,
    kind: &'static str,
    kind_label: &'static str,
    back: String,
    rows: Vec<Row>,
    pager: Pager,
    sections: Vec<Section>,
    error: Option<String>,
    batch: Option<Batch>,
    select_hint: bool,
    selectable: bool,
    show_status: bool,
}

async fn render_pull(
    s: &AppState,
    u: &WebUser,
    pairs: &Pairs,
    error: Option<Error>,
    checked: &[i64],
    batch: Option<Batch>,
) -> PageResult<Response> {
    let kind_s = last_value(pairs, "kind");
    let menu = format!(
        "/transfers/pull?kind={}",
        parse_kind(&kind_s).map(|k| k.as_str()).unwrap_or("")
    );
    let layout = Layout::new(&s.app, u, "转学调档", &menu).await;
    let kind = parse_kind(&kind_s).map_err(|e| layout.fail(e))?;
    let mut layout = layout;
    layout.retitle(format!("{}调档", kind.label_zh()));
    if !u.user.role.is_school() {
        return Err(layout.fail(Error::forbidden("调档由转入学校办理")));
    }
    let page = parse_page(&last_value(pairs, "page"), "").map_err(|e| layout.fail(e))?;
    let filter = |status: TransferStatus, direction: &str| TransferFilter {
        kind: Some(kind.as_str().to_string()),
        status: Some(status.as_str().to_string()),
        direction: Some(direction.to_string()),
        ..Default::default()
    };
    let list = s
        .app
        .transfers(&u.user, &filter(TransferStatus::Approved, "in"), page)
        .await
        .map_err(|e| layout.fail(e))?;
    let keep = [("kind", kind.as_str())];
    let pager = Pager::new(
        "/transfers/pull",
        &keep,
        page.page,
        page.per_page,
        list.total,
    );
    let mut sections = vec![];
    for (title, status, direction) in [
        (
            "已调档，待转出学校寄出纸质档案",
            TransferStatus::FilePulled,
            "in",
        ),
        (
            "纸质档案已寄出，待本校确认接收",
            TransferStatus::PaperSent,
            "in",
        ),
        (
            "已被转入学校调档，待本校寄出纸质档案",
            TransferStatus::FilePulled,
            "out",
        ),
    ] {
        let p = s
            .app
            .transfers(&u.user, &filter(status, direction), Page::default())
            .await
            .map_err(|e| layout.fail(e))?;
        sections.push(Section {
            title,
            more_href: format!(
                "/transfers{}",
                query_string(&[
                    ("kind", kind.as_str()),
                    ("status", status.as_str()),
                    ("direction", direction)
                ])
            ),
            total: p.total,
            rows: p.items.into_iter().map(|t| row_of(t, &[])).collect(),
        });
    }
    let status = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let page = PullPage {
        kind: kind.as_str(),
        kind_label: kind.label_zh(),
        back: format!("/transfers/pull{}", query_string(&keep)),
        rows: list.items.into_iter().map(|t| row_of(t, checked)).collect(),
        pager,
        sections,
        error: error.map(|e| e.message),
        batch,
        select_hint: last_value(pairs, "hint") == "select",
        selectable: true,
        show_status: false,
        layout,
    };
    Ok((status, page).into_response())
}

pub async fn pull_list(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    render_pull(&s, &u, &pairs, None, &[], None).await
}

/// The toolbar's 调档: every selected approved transfer, one by one.
pub async fn pull_batch(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    if let Err(e) = check_csrf(&u, &last_value(&pairs, "_csrf")) {
        let layout = Layout::new(&s.app, &u, "转学调档", "").await;
        return Err(layout.fail(e));
    }
    let ids = match selected_ids(&pairs) {
        Ok(ids) => ids,
        Err(e) => return render_pull(&s, &u, &pairs, Some(e), &[], None).await,
    };
    if ids.is_empty() {
        let e = Error::validation("id", "请先选中要调档的学生（可多选）");
        return render_pull(&s, &u, &pairs, Some(e), &[], None).await;
    }
    let mut results = vec![];
    for id in ids {
        results.push(match s.app.pull_file(&u.user, id).await {
            Ok(d) => BatchResult {
                id,
                href: format!("/transfers/{id}"),
                student_name: d.student_name,
                ok: true,
                message: format!(
                    "已调档，学生已转入{}（{}）",
                    d.to_school_name, d.to_class_name
                ),
            },
            Err(e) => BatchResult {
                id,
                href: format!("/transfers/{id}"),
                student_name: student_of(&s, &u, id).await,
                ok: false,
                message: user_error(e).message,
            },
        });
    }
    let ok = results.iter().filter(|r| r.ok).count();
    let batch = Batch {
        action: "调档",
        ok,
        failed: results.len() - ok,
        results,
    };
    render_pull(&s, &u, &pairs, None, &[], Some(batch)).await
}

// ---------------------------------------------------------------------------------------------
// 明细 (toolbar)

/// The toolbar's 明细: the first selected row's detail page; nothing selected → back to the list
/// with a hint.
pub async fn open(_u: WebUser, form: Result<Form<Pairs>, FormRejection>) -> Redirect {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let back = last_value(&pairs, "back");
    // Only a list of this site's transfer pages (never an absolute or protocol-relative URL).
    let back = if back.starts_with("/transfers") && !back.contains("//") && !back.contains('\\') {
        back
    } else {
        "/transfers".to_string()
    };
    match selected_ids(&pairs)
        .ok()
        .and_then(|ids| ids.first().copied())
    {
        Some(id) => Redirect::to(&format!("/transfers/{id}")),
        None => {
            let sep = if back.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{back}{sep}hint=select"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 查询

/// The query's filter bar as the user filled it in.
pub struct QueryForm {
    pub kind: &'static str,
    pub status: String,
    pub q: String,
    pub from_date: String,
    pub to_date: String,
    pub overdue: bool,
    pub direction: String,
    pub per_page: String,
    pub statuses: Vec<Opt>,
    /// Schools choose 转入 / 转出.
    pub school: bool,
    pub error: Option<String>,
    pub error_field: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "transfer_query.html")]
pub struct QueryPage {
    layout: Layout,
    kind_label: &'static str,
    f: QueryForm,
    export_href: String,
    reset_href: String,
    rows: Vec<Row>,
    pager: Pager,
    selectable: bool,
    show_status: bool,
}

fn parse_date(s: &str, field: &'static str) -> Result<Option<NaiveDate>, Error> {
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| Error::validation(field, "日期格式应为 年-月-日，如 2026-09-01"))
}

/// Reads the query's filters; the first problem found is returned with the form.
fn query_filter(
    pairs: &Pairs,
    kind: TransferKind,
    school: bool,
) -> (QueryForm, TransferFilter, Page, Option<Error>) {
    let v = |k: &str| last_value(pairs, k);
    let (status, q, from_date, to_date, direction, page_s, per_page_s) = (
        v("status"),
        v("q"),
        v("from_date"),
        v("to_date"),
        v("direction"),
        v("page"),
        v("per_page"),
    );
    let overdue = matches!(v("overdue").as_str(), "1" | "true" | "on");
    let direction = if school { direction } else { String::new() };
    let mut error = None;
    let page = parse_page(&page_s, &per_page_s).unwrap_or_else(|e| {
        error = Some(e);
        Page::default()
    });
    let from = parse_date(&from_date, "from_date").unwrap_or_else(|e| {
        error.get_or_insert(e);
        None
    });
    let to = parse_date(&to_date, "to_date").unwrap_or_else(|e| {
        error.get_or_insert(e);
        None
    });
    if let (Some(a), Some(b)) = (from, to)
        && a > b
    {
        error.get_or_insert(Error::validation(
            "to_date",
            "申请日期的结束日期不能早于开始日期",
        ));
    }
    if !status.is_empty() && TransferStatus::parse(&status).is_none() {
        error.get_or_insert(Error::validation("status", "状态值无效"));
    }
    if !matches!(direction.as_str(), "" | "in" | "out") {
        error.get_or_insert(Error::validation("direction", "方向应为转入或转出"));
    }
    if q.chars().count() > 50 {
        error.get_or_insert(Error::validation("q", "查询内容过长"));
    }
    let filter = TransferFilter {
        status: (!status.is_empty()).then(|| status.clone()),
        kind: Some(kind.as_str().to_string()),
        todo: None,
        q: (!q.is_empty()).then(|| q.clone()),
        from_date: from,
        to_date: to,
        overdue: overdue.then_some(true),
        direction: (!direction.is_empty()).then(|| direction.clone()),
    };
    let statuses = TransferStatus::ALL
        .iter()
        .map(|st| Opt {
            value: st.as_str().to_string(),
            label: st.label_zh().to_string(),
            selected: st.as_str() == status,
        })
        .collect();
    let form = QueryForm {
        kind: kind.as_str(),
        status,
        q,
        from_date,
        to_date,
        overdue,
        direction,
        per_page: if page.per_page == 50 {
            String::new()
        } else {
            per_page_s
        },
        statuses,
        school,
        error: None,
        error_field: String::new(),
    };
    (form, filter, page, error)
}

/// The filter pairs to keep in links (pager, export), besides `page`.
fn keep_pairs(f: &QueryForm) -> Vec<(&str, &str)> {
    vec![
        ("kind", f.kind),
        ("status", f.status.as_str()),
        ("q", f.q.as_str()),
        ("from_date", f.from_date.as_str()),
        ("to_date", f.to_date.as_str()),
        ("overdue", if f.overdue { "1" } else { "" }),
        ("direction", f.direction.as_str()),
        ("per_page", f.per_page.as_str()),
    ]
}

pub async fn query(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let kind_s = last_value(&pairs, "kind");
    let menu = format!(
        "/transfers?kind={}",
        parse_kind(&kind_s).map(|k| k.as_str()).unwrap_or("")
    );
    let layout = Layout::new(&s.app, &u, "转学查询", &menu).await;
    let kind = parse_kind(&kind_s).map_err(|e| layout.fail(e))?;
    let mut layout = layout;
    layout.retitle(format!("{}查询", kind.label_zh()));
    let (mut f, filter, page, mut error) = query_filter(&pairs, kind, u.user.role.is_school());
    let (items, total) = if error.is_some() {
        (vec![], 0)
    } else {
        match s.app.transfers(&u.user, &filter, page).await {
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
    let keep = keep_pairs(&f);
    let pager = Pager::new("/transfers", &keep, page.page, page.per_page, total);
    let export_keep: Vec<(&str, &str)> = keep
        .iter()
        .copied()
        .filter(|(k, _)| *k != "per_page")
        .collect();
    let export_href = format!("/transfers/export.xlsx{}", query_string(&export_keep));
    let reset_href = list_path("/transfers", kind);
    let status = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    f.error_field = error
        .as_ref()
        .and_then(|e| e.field)
        .unwrap_or_default()
        .to_string();
    f.error = error.map(|e| e.message);
    let page = QueryPage {
        layout,
        kind_label: kind.label_zh(),
        export_href,
        reset_href,
        rows: items.into_iter().map(|t| row_of(t, &[])).collect(),
        pager,
        f,
        selectable: false,
        show_status: true,
    };
    Ok((status, page).into_response())
}

/// 导出Excel: the query's current filter as an .xlsx workbook (audited by the use case).
pub async fn export(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let layout = Layout::new(&s.app, &u, "导出Excel", "").await;
    let kind = parse_kind(&last_value(&pairs, "kind")).map_err(|e| layout.fail(e))?;
    let (_, filter, _, error) = query_filter(&pairs, kind, u.user.role.is_school());
    if let Some(e) = error {
        return Err(layout.fail(e));
    }
    let bytes = s
        .app
        .export_transfers(&u.user, &filter)
        .await
        .map_err(|e| layout.fail(e))?;
    let name = format!("{}查询.xlsx", kind.label_zh());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"transfers.xlsx\"; filename*=UTF-8''{}",
                    url_encode(&name)
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
    fn kinds_default_to_cross_province() {
        assert_eq!(parse_kind("").unwrap(), TransferKind::CrossProvince);
        assert_eq!(
            parse_kind("intra_province").unwrap(),
            TransferKind::IntraProvince
        );
        assert_eq!(parse_kind("x").unwrap_err().field, Some("kind"));
    }

    #[test]
    fn due_cells_mark_overdue_and_due_soon() {
        let d = NaiveDate::from_ymd_opt(2026, 10, 15);
        let late = due_cell(d, 3, false);
        assert_eq!(
            (late.class, late.late.as_str()),
            ("overdue", "逾期3个工作日")
        );
        assert_eq!(due_cell(d, 0, true).class, "due-soon");
        assert_eq!(due_cell(d, 0, false).class, "");
        assert_eq!(due_cell(None, 0, false).date, "");
    }

    #[test]
    fn selected_ids_are_deduplicated_and_checked() {
        let p = |v: &[&str]| -> Pairs {
            v.iter()
                .map(|x| ("id".to_string(), x.to_string()))
                .collect()
        };
        assert_eq!(selected_ids(&p(&["3", "1", "3"])).unwrap(), vec![3, 1]);
        assert_eq!(selected_ids(&p(&["x"])).unwrap_err().field, Some("id"));
    }

    #[test]
    fn query_filters_validate_dates() {
        let pairs: Pairs = vec![
            ("from_date".into(), "2026-09-10".into()),
            ("to_date".into(), "2026-09-01".into()),
            ("overdue".into(), "1".into()),
        ];
        let (f, filter, _, e) = query_filter(&pairs, TransferKind::CrossProvince, false);
        assert_eq!(e.unwrap().field, Some("to_date"));
        assert!(f.overdue && filter.overdue == Some(true));
        let bad: Pairs = vec![("from_date".into(), "2026/09/10".into())];
        let (_, _, _, e) = query_filter(&bad, TransferKind::CrossProvince, true);
        assert_eq!(e.unwrap().field, Some("from_date"));
    }
}
