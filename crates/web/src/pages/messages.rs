//! 消息: `GET /messages` (the organisation's notifications, newest first, unread marked) and
//! `POST /messages/read` (marks one, or all, read).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use xueji_domain::Error;

use super::transfers::check_csrf;
use super::{Layout, PageResult, Pager, fmt_time, last_value, parse_page, query_string};
use crate::AppState;
use crate::session::WebUser;

type Pairs = Vec<(String, String)>;

pub struct MessageRow {
    pub id: i64,
    pub kind: &'static str,
    pub text: String,
    pub href: String,
    pub created_at: String,
    pub read: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "messages.html")]
pub struct MessagesPage {
    layout: Layout,
    rows: Vec<MessageRow>,
    pager: Pager,
    unread_only: bool,
    /// Where the read forms come back to.
    back: String,
    all_href: String,
    unread_href: String,
}

/// The message kind as a short tag.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "step_waiting" => "待审核",
        "step_approved" => "审核通过",
        "approved" => "核办完成",
        "rejected" => "不同意",
        "withdrawn" => "已撤销",
        "file_pulled" => "已调档",
        "paper_sent" => "档案寄出",
        "paper_received" => "档案接收",
        "problem_waiting" => "问题学籍待审核",
        "problem_approved" => "问题学籍已同意",
        "problem_refused" => "问题学籍被退回",
        "promotion_done" => "升级完成",
        _ => "通知",
    }
}

pub async fn list(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "消息", "/messages").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let unread_only = last_value(&pairs, "unread") == "1";
    let page = parse_page(&last_value(&pairs, "page"), "").map_err(|e| layout.fail(e))?;
    let list = s
        .app
        .notifications(&u.user, unread_only, page)
        .await
        .map_err(|e| layout.fail(e))?;
    let unread = if unread_only { "1" } else { "" };
    let keep = [("unread", unread)];
    let pager = Pager::new("/messages", &keep, page.page, page.per_page, list.total);
    let page_s = page.page.to_string();
    let back = format!(
        "/messages{}",
        query_string(&[
            ("unread", unread),
            ("page", if page.page > 1 { page_s.as_str() } else { "" })
        ])
    );
    let rows = list
        .items
        .into_iter()
        .map(|n| MessageRow {
            id: n.id,
            kind: kind_label(&n.kind),
            href: match (n.transfer_id, n.kind.as_str()) {
                (Some(t), _) => format!("/transfers/{t}"),
                (None, "problem_waiting") => "/problems?todo=1".into(),
                (None, "problem_approved" | "problem_refused") => "/problems".into(),
                _ => String::new(),
            },
            text: n.text,
            created_at: fmt_time(&n.created_at),
            read: n.read,
        })
        .collect();
    Ok(MessagesPage {
        layout,
        rows,
        pager,
        unread_only,
        back,
        all_href: "/messages".into(),
        unread_href: "/messages?unread=1".into(),
    }
    .into_response())
}

/// 标为已读: the message `id`, or every unread message of the organisation when no id is given.
pub async fn mark_read(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let layout = Layout::new(&s.app, &u, "消息", "/messages").await;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| layout.fail(e))?;
    let id = last_value(&pairs, "id");
    let ids: Vec<i64> = if id.is_empty() {
        vec![]
    } else {
        vec![
            id.parse()
                .map_err(|_| layout.fail(Error::not_found("该消息")))?,
        ]
    };
    s.app
        .mark_read(&u.user, &ids)
        .await
        .map_err(|e| layout.fail(e))?;
    let back = last_value(&pairs, "back");
    let back = if back.starts_with("/messages") && !back.contains("//") && !back.contains('\\') {
        back
    } else {
        "/messages".to_string()
    };
    Ok(Redirect::to(&back).into_response())
}
