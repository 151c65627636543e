//! 对接管理 (`GET /dock`, national administrator): the docked provinces with their feeds'
//! backlog and last contact, and the message log (received and sent, refusals included).
//! 对接待办 (`GET /node`, on a provincial node): the hub's transfers waiting for the user's
//! organisation, with the buttons that queue its action for the hub (`POST /node/{id}`).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use xueji_app::dock::{DockMessageOut, DockedProvinceOut};
use xueji_domain::Error;

use super::{Layout, PageResult, Pager, fmt_time, last_value, parse_page};
use crate::AppState;
use crate::session::WebUser;

type Pairs = Vec<(String, String)>;

pub struct ProvinceRow {
    pub p: DockedProvinceOut,
    pub oldest: String,
    pub last_fetch: String,
    pub last_contact: String,
}

pub struct MessageRow {
    pub m: DockMessageOut,
    pub at: String,
    pub refused: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "dock.html")]
pub struct DockPage {
    layout: Layout,
    provinces: Vec<ProvinceRow>,
    messages: Vec<MessageRow>,
    pager: Pager,
}

pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "对接管理", "/dock").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let page = parse_page(&last_value(&pairs, "page"), "").map_err(|e| layout.fail(e))?;
    let t = |d: Option<chrono::DateTime<chrono::Utc>>| d.as_ref().map(fmt_time).unwrap_or_default();
    let provinces = s
        .app
        .docked_provinces(&u.user)
        .await
        .map_err(|e| layout.fail(e))?
        .into_iter()
        .map(|p| ProvinceRow {
            oldest: t(p.oldest_unacked_at),
            last_fetch: t(p.last_fetch_at),
            last_contact: t(p.last_contact_at),
            p,
        })
        .collect();
    let log = s
        .app
        .dock_messages(&u.user, None, page)
        .await
        .map_err(|e| layout.fail(e))?;
    let pager = Pager::new("/dock", &[], page.page, page.per_page, log.total);
    let messages = log
        .items
        .into_iter()
        .map(|m| MessageRow {
            at: fmt_time(&m.at),
            refused: m.status >= 400,
            m,
        })
        .collect();
    Ok(DockPage {
        layout,
        provinces,
        messages,
        pager,
    }
    .into_response())
}

pub struct TodoRow {
    pub id: i64,
    pub student: String,
    pub from_school: String,
    pub to_school: String,
    pub status: String,
    /// The review step waiting (empty after approval).
    pub step: String,
    /// The actions the user may queue: (decision word, button label).
    pub actions: Vec<(&'static str, &'static str)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "node.html")]
pub struct NodePage {
    layout: Layout,
    rows: Vec<TodoRow>,
    done: bool,
}

fn actions_for(
    status: &str,
    role: xueji_domain::access::Role,
) -> Vec<(&'static str, &'static str)> {
    use xueji_domain::access::Role;
    match (status, role) {
        ("approved", Role::SchoolAdmin) => vec![("pull_file", "调档")],
        ("file_pulled", Role::SchoolAdmin) => vec![("paper_sent", "纸质档案已寄出")],
        ("paper_sent", Role::SchoolAdmin) => vec![("paper_received", "纸质档案已接收")],
        (_, Role::SchoolAdmin) => vec![],
        _ => vec![("approve", "同意"), ("reject", "不同意")],
    }
}

pub async fn node_page(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "对接待办", "/node").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let todo = s.app.node_todo(&u.user).await.map_err(|e| layout.fail(e))?;
    let rows = todo
        .into_iter()
        .map(|t| {
            let d = &t.data;
            let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
            let status = text("status");
            TodoRow {
                id: t.transfer_id,
                student: format!("{}（{}）", text("student_name"), text("student_no")),
                from_school: text("from_school"),
                to_school: text("to_school"),
                step: d["waiting"]["step"].as_str().unwrap_or("").to_string(),
                actions: actions_for(&status, u.user.role),
                status,
            }
        })
        .collect();
    Ok(NodePage {
        layout,
        rows,
        done: last_value(&pairs, "done") == "1",
    }
    .into_response())
}

pub async fn node_act(
    State(s): State<AppState>,
    u: WebUser,
    Path(id): Path<i64>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "对接待办", "/node").await;
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    crate::session::check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| layout.fail(e))?;
    let decision = last_value(&pairs, "decision");
    let opinion = last_value(&pairs, "opinion");
    if opinion.chars().count() > 500 {
        return Err(layout.fail(Error::validation("opinion", "意见不超过500字")));
    }
    s.app
        .node_queue_decision(&u.user, id, &decision, &opinion, None)
        .await
        .map_err(|e| layout.fail(e))?;
    Ok(Redirect::to("/node?done=1").into_response())
}
