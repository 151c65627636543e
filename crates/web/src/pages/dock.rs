//! 对接管理 (`GET /dock`, national administrator): the docked provinces with their feeds'
//! backlog and last contact, and the message log (received and sent, refusals included).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use xueji_app::dock::{DockMessageOut, DockedProvinceOut};

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
