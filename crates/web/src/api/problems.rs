//! `/api/v1/problems` (问题学籍处理), `/api/v1/promotions` (升级/毕业) and the electronic archive
//! `/api/v1/students/{student_no}/archive`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use xueji_app::archive::StudentArchive;
use xueji_app::paging::{Page, PageQuery};
use xueji_app::problems::{
    ProblemActionRequest, ProblemDecision, ProblemDetail, ProblemFilter, ProblemSummary,
};
use xueji_app::promotion::{PromotionBlocker, PromotionReport, PromotionRequest};

use super::paged;
use crate::AppState;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, Problem};
use crate::session::ApiUser;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ProblemListQuery {
    /// `id_not_found`, `name_mismatch`, `duplicate_identity` or `suspected_duplicate`.
    pub kind: Option<String>,
    /// `open` (待处理), `pending` (待主管部门审核) or `resolved` (已处理).
    pub status: Option<String>,
    /// 学校标识码 (authorities).
    pub school: Option<String>,
    /// Only those whose pending action waits for the caller's authority.
    pub todo: Option<bool>,
    /// Name prefix or exact student number.
    pub q: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// Problem records (问题学籍) the caller may see: a school its own, an authority its region's,
/// newest first; the total in `X-Total-Count`.
#[utoipa::path(get, path = "/api/v1/problems", tag = "problems", security(("bearer" = [])),
    params(ProblemListQuery),
    responses((status = 200, body = Vec<ProblemSummary>), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<ProblemListQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    let f = ProblemFilter {
        kind: q.kind,
        status: q.status,
        school: q.school,
        todo: q.todo,
        q: q.q,
    };
    Ok(paged(s.app.problems(&u, &f, page).await?))
}

/// One problem record with every action taken on it.
#[utoipa::path(get, path = "/api/v1/problems/{id}", tag = "problems", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ProblemDetail), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn detail(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ProblemDetail>> {
    Ok(Json(s.app.problem(&u, id).await?))
}

/// The school's administrator takes an action on an open problem record: `confirm` (佐证),
/// `correct` (变更: `name` and/or `id_type`/`id_number`) or `delete` (删除), with a written
/// `reason`. It takes effect when the supervising authority approves; meanwhile the student is
/// locked (`transfer_in_progress` for other businesses). Evidence files are attached in the web
/// form.
#[utoipa::path(post, path = "/api/v1/problems/{id}/actions", tag = "problems", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ProblemActionRequest,
    responses((status = 201, body = ProblemDetail), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn act(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<ProblemActionRequest>,
) -> ApiResult<(StatusCode, Json<ProblemDetail>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.request_problem_action(&u, id, &b, vec![]).await?),
    ))
}

/// The supervising authority decides the pending action: `approve` (同意) applies it, `refuse`
/// (不同意, also `reject`; needs an `opinion`) reopens the record.
#[utoipa::path(post, path = "/api/v1/problems/{id}/decision", tag = "problems", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ProblemDecision,
    responses((status = 200, body = ProblemDetail), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decide(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<ProblemDecision>,
) -> ApiResult<Json<ProblemDetail>> {
    Ok(Json(s.app.decide_problem_action(&u, id, &b).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct BlockersQuery {
    /// The school year that begins, e.g. `2026`.
    pub year: i32,
    /// A region subtree within the caller's jurisdiction.
    pub region: Option<String>,
}

/// 在办业务清理: the students whose open business blocks the year's 升级/毕业 in the caller's
/// jurisdiction (empty: the run may go).
#[utoipa::path(get, path = "/api/v1/promotions/blockers", tag = "promotions", security(("bearer" = [])),
    params(BlockersQuery),
    responses((status = 200, body = Vec<PromotionBlocker>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn blockers(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<BlockersQuery>,
) -> ApiResult<Json<Vec<PromotionBlocker>>> {
    Ok(Json(
        s.app
            .promotion_blockers(&u, q.year, q.region.as_deref())
            .await?,
    ))
}

/// 升级/毕业 of the caller's jurisdiction (optionally one region of it), run in one call: every
/// enrolled student moves up one grade, the final grades graduate. Refused with
/// `transfer_in_progress` (409, naming the students; the whole list at
/// `/api/v1/promotions/blockers`) while any affected student has an open business, and then
/// nothing changes. Running the same year again changes nothing (`schools_skipped`).
#[utoipa::path(post, path = "/api/v1/promotions", tag = "promotions", security(("bearer" = [])),
    request_body = PromotionRequest,
    responses((status = 200, body = PromotionReport), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn promote(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiJson(b): ApiJson<PromotionRequest>,
) -> ApiResult<Json<PromotionReport>> {
    Ok(Json(s.app.promote_as(&u, &b, &|_| {}).await?))
}

/// 电子学籍档案: the student with the whole history — enrollments, numbers, identity checks,
/// problem records, transfers with their approvals, status changes.
#[utoipa::path(get, path = "/api/v1/students/{student_no}/archive", tag = "students", security(("bearer" = [])),
    params(("student_no" = String, Path)),
    responses((status = 200, body = StudentArchive), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn archive(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(no): ApiPath<String>,
) -> ApiResult<Json<StudentArchive>> {
    Ok(Json(s.app.student_archive(&u, &no).await?))
}
