//! `/api/v1/notifications` (消息).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use xueji_app::notifications::NotificationOut;
use xueji_app::paging::{Page, PageQuery};

use super::paged;
use crate::AppState;
use crate::error::{ApiJson, ApiQuery, ApiResult, Problem};
use crate::session::ApiUser;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct NotificationQuery {
    /// Only unread messages.
    pub unread: Option<bool>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// The caller organisation's messages, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])), params(NotificationQuery),
    responses((status = 200, body = Vec<NotificationOut>), (status = 401, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<NotificationQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    Ok(paged(
        s.app
            .notifications(&u, q.unread.unwrap_or(false), page)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadBody {
    /// Message ids; empty marks all read.
    #[serde(default)]
    pub ids: Vec<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MarkReadOut {
    pub marked: u64,
    pub unread: i64,
}

/// Marks messages read.
#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "notifications", security(("bearer" = [])),
    request_body = MarkReadBody, responses((status = 200, body = MarkReadOut), (status = 401, body = Problem)))]
pub async fn mark_read(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiJson(b): ApiJson<MarkReadBody>,
) -> ApiResult<Json<MarkReadOut>> {
    let marked = s.app.mark_read(&u, &b.ids).await?;
    Ok(Json(MarkReadOut {
        marked,
        unread: s.app.unread_count(&u).await?,
    }))
}
