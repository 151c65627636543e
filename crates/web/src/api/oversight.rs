//! Provincial policy, oversight of deadlines, stale cases, and the parents' query.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use xueji_app::deadlines::DeadlineReport;
use xueji_app::oversight::{Dashboard, StaleItem};
use xueji_app::parent::ParentView;
use xueji_app::policies::PolicyOut;
use xueji_app::transfers::TransferDetail;
use xueji_domain::Error;
use xueji_domain::access::Role;
use xueji_domain::policy::Policy;

use crate::AppState;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, Problem};
use crate::session::{ApiUser, ClientIp};

/// The province's transfer policy now in force (version 0 = the national default).
#[utoipa::path(get, path = "/api/v1/policies/{province}", tag = "policy", security(("bearer" = [])),
    params(("province" = String, Path, description = "省级行政区划代码")),
    responses((status = 200, body = PolicyOut), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn get_policy(
    State(s): State<AppState>,
    ApiUser(_u): ApiUser,
    ApiPath(p): ApiPath<String>,
) -> ApiResult<Json<PolicyOut>> {
    Ok(Json(s.app.policy(&p).await?))
}

/// Every saved version, newest first.
#[utoipa::path(get, path = "/api/v1/policies/{province}/versions", tag = "policy", security(("bearer" = [])),
    params(("province" = String, Path)),
    responses((status = 200, body = Vec<PolicyOut>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn policy_versions(
    State(s): State<AppState>,
    ApiUser(_u): ApiUser,
    ApiPath(p): ApiPath<String>,
) -> ApiResult<Json<Vec<PolicyOut>>> {
    Ok(Json(s.app.policy_history(&p).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// The whole policy: freezes, closed_grades, refuse_suspended, extra_levels, leader_confirm,
    /// shared_authority_once, deadline_days, overdue_action (flag | escalate | auto_approve),
    /// required_evidence.
    #[schema(value_type = Object)]
    pub policy: Policy,
    /// 修订说明.
    #[serde(default)]
    pub note: String,
}

/// Saves a new version (the province's own authority, or the national administrator).
#[utoipa::path(put, path = "/api/v1/policies/{province}", tag = "policy", security(("bearer" = [])),
    params(("province" = String, Path)), request_body = PolicyBody,
    responses((status = 200, body = PolicyOut), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_policy(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(p): ApiPath<String>,
    ApiJson(b): ApiJson<PolicyBody>,
) -> ApiResult<Json<PolicyOut>> {
    Ok(Json(s.app.set_policy(&u, &p, b.policy, &b.note).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DashboardQuery {
    /// A subordinate region to drill down into.
    pub region: Option<String>,
}

/// 督办: open steps in the caller's region — waiting, due soon, overdue — per subordinate region
/// and per school.
#[utoipa::path(get, path = "/api/v1/oversight/dashboard", tag = "oversight", security(("bearer" = [])), params(DashboardQuery),
    responses((status = 200, body = Dashboard), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn dashboard(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> ApiResult<Json<Dashboard>> {
    Ok(Json(s.app.dashboard(&u, q.region.as_deref()).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StaleQuery {
    /// Open longer than this many days (default 183).
    pub days: Option<i64>,
}

/// Stale cases (open too long) in the caller's region.
#[utoipa::path(get, path = "/api/v1/oversight/stale", tag = "oversight", security(("bearer" = [])), params(StaleQuery),
    responses((status = 200, body = Vec<StaleItem>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn stale(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<StaleQuery>,
) -> ApiResult<Json<Vec<StaleItem>>> {
    Ok(Json(s.app.stale_transfers(&u, q.days).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    pub reason: String,
}

/// Closes a stale case with a reason (provincial authority of either side).
#[utoipa::path(post, path = "/api/v1/transfers/{id}/close", tag = "oversight", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = CloseBody,
    responses((status = 200, body = TransferDetail), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn close(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<CloseBody>,
) -> ApiResult<Json<TransferDetail>> {
    Ok(Json(s.app.close_transfer(&u, id, &b.reason).await?))
}

/// Runs the deadline job now (reminders, escalation, 逾期视为同意); it also runs periodically.
#[utoipa::path(post, path = "/api/v1/oversight/run-deadlines", tag = "oversight", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 403, body = Problem)))]
pub async fn run_deadlines(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<DeadlineReport>> {
    if u.role != Role::NationalAdmin {
        return Err(Error::forbidden("只有全国学籍管理员可以手动运行期限检查").into());
    }
    Ok(Json(s.app.process_deadlines().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentQueryBody {
    /// 查询码 given by the receiving school.
    pub code: String,
    pub student_name: String,
}

/// 家长查询 (no login): the current step, its due date and the outcome — nothing else.
#[utoipa::path(post, path = "/api/v1/public/transfer-progress", tag = "public", request_body = ParentQueryBody,
    responses((status = 200, body = ParentView), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn parent_query(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<ParentQueryBody>,
) -> ApiResult<Json<ParentView>> {
    Ok(Json(
        s.app.parent_query(&b.code, &b.student_name, &ip).await?,
    ))
}

/// 统计: transfers in and out per region, by kind and outcome; working days per step and per
/// authority; refusal reasons.
#[utoipa::path(get, path = "/api/v1/statistics", tag = "statistics", security(("bearer" = [])),
    params(xueji_app::statistics::StatsQuery),
    responses((status = 200, body = xueji_app::statistics::Stats), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn statistics(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<xueji_app::statistics::StatsQuery>,
) -> ApiResult<Json<xueji_app::statistics::Stats>> {
    Ok(Json(s.app.statistics(&u, &q).await?))
}

/// The statistics as .xlsx (audited).
#[utoipa::path(get, path = "/api/v1/statistics.xlsx", tag = "statistics", security(("bearer" = [])),
    params(xueji_app::statistics::StatsQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn statistics_xlsx(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<xueji_app::statistics::StatsQuery>,
) -> ApiResult<axum::response::Response> {
    let bytes = s.app.export_statistics(&u, &q).await?;
    Ok(super::transfers::xlsx_response(bytes, "statistics.xlsx"))
}
