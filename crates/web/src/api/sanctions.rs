//! 处分记录: a student's sanctions, recorded and revoked by the school that holds the student.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use xueji_app::sanctions::{NewSanction, SanctionOut};

use crate::AppState;
use crate::error::{ApiJson, ApiPath, ApiResult, Problem};
use crate::session::ApiUser;

/// A student's sanctions, newest first, each with whether it is in force today.
#[utoipa::path(get, path = "/api/v1/students/{student_no}/sanctions", tag = "students", security(("bearer" = [])),
    params(("student_no" = String, Path)),
    responses((status = 200, body = Vec<SanctionOut>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(no): ApiPath<String>,
) -> ApiResult<Json<Vec<SanctionOut>>> {
    Ok(Json(s.app.sanctions(&u, &no).await?))
}

/// 记录处分: the 学籍管理员 of the student's current school records a sanction (audited).
#[utoipa::path(post, path = "/api/v1/students/{student_no}/sanctions", tag = "students", security(("bearer" = [])),
    params(("student_no" = String, Path)), request_body = NewSanction,
    responses((status = 201, body = SanctionOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn record(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(no): ApiPath<String>,
    ApiJson(b): ApiJson<NewSanction>,
) -> ApiResult<(StatusCode, Json<SanctionOut>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.record_sanction(&u, &no, &b).await?),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// 解除理由.
    pub reason: String,
}

/// 解除处分: ends a sanction early; the record keeps it. A second revocation is `conflict`.
#[utoipa::path(post, path = "/api/v1/sanctions/{id}/revoke", tag = "students", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = RevokeBody,
    responses((status = 200, body = SanctionOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn revoke(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<RevokeBody>,
) -> ApiResult<Json<SanctionOut>> {
    Ok(Json(s.app.revoke_sanction(&u, id, &b.reason).await?))
}
