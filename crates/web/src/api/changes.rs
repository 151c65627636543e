//! `/api/v1/changes`: 学籍异动 and 关键数据变更 requests (filed per student, reviewed by the
//! school's reviewer then the supervising authority), and the direct edit of non-key fields.

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::UtoipaMethodRouter;
use xueji_app::changes::{ChangeDetail, ChangeFilter, ChangeSummary, NewChange, StudentPatch};
use xueji_app::paging::{Page, PageQuery};
use xueji_app::students::StudentDetail;
use xueji_domain::Error;

use super::paged;
// The same bodies as the transfers' review and withdrawal.
use super::transfers::{ReviewBody, WithdrawBody};
use crate::AppState;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, Problem};
use crate::session::ApiUser;

/// The filing route takes evidence as base64 inside its JSON: up to five files of 2 MB grow past
/// the extractors' default 2 MB limit, so this route allows the server-wide `MAX_BODY`.
pub fn with_evidence_limit(
    (schemas, paths, method): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    (
        schemas,
        paths,
        method.layer(DefaultBodyLimit::max(crate::MAX_BODY)),
    )
}

/// Files a change request for a student of the caller's school (its 学籍管理员). The student is
/// locked (在办业务) until the request ends: a student with an open business gets
/// `transfer_in_progress`. A kind that does not fit the student (退学 outside 高中, 复学 of a
/// student not suspended, …) is `policy_violation`. `key_change` needs evidence, a valid new
/// identity number, and one not on record anywhere (`duplicate_person`). A `dropout` answer
/// carries the report duty (劝返, 控辍保学) in `notice`.
#[utoipa::path(post, path = "/api/v1/students/{student_no}/changes", tag = "changes", security(("bearer" = [])),
    params(("student_no" = String, Path, description = "Any number the student has held")),
    request_body = NewChange,
    responses((status = 201, body = ChangeDetail), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn file(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(student_no): ApiPath<String>,
    ApiJson(body): ApiJson<NewChange>,
) -> ApiResult<(StatusCode, Json<ChangeDetail>)> {
    let d = s.app.file_change(&u, &student_no, &body, vec![]).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// `pending_school`, `pending_authority`, `applied`, `refused`, `withdrawn`.
    pub status: Option<String>,
    /// A kind word, e.g. `suspension`, `key_change`.
    pub kind: Option<String>,
    /// 学校标识码.
    pub school: Option<String>,
    /// Any number the student has held.
    pub student: Option<String>,
    /// Only those waiting for the caller's organisation.
    pub todo: Option<bool>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// The change requests the caller may see (a school its own, an authority those of its region),
/// newest first.
#[utoipa::path(get, path = "/api/v1/changes", tag = "changes", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Vec<ChangeSummary>), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    let f = ChangeFilter {
        status: q.status,
        kind: q.kind,
        school: q.school,
        student: q.student,
        todo: q.todo,
    };
    Ok(paged(s.app.changes(&u, &f, page).await?))
}

/// One request with its two steps (school, authority), its payload and evidence.
#[utoipa::path(get, path = "/api/v1/changes/{id}", tag = "changes", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ChangeDetail), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn detail(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ChangeDetail>> {
    Ok(Json(s.app.change(&u, id).await?))
}

/// 审核 / 审批: the school's reviewer, then the supervising authority. The authority's approval
/// applies the change in the same transaction; two simultaneous decisions give one `conflict`.
#[utoipa::path(post, path = "/api/v1/changes/{id}/review", tag = "changes", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ReviewBody,
    responses((status = 200, body = ChangeDetail), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn review(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<ReviewBody>,
) -> ApiResult<Json<ChangeDetail>> {
    let approve = match b.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(Error::validation(
                "decision",
                "decision 应为 approve（同意）或 reject（不同意）",
            )
            .into());
        }
    };
    Ok(Json(
        s.app.review_change(&u, id, approve, &b.opinion).await?,
    ))
}

/// 撤销: the filing school's administrator, while the request is pending.
#[utoipa::path(post, path = "/api/v1/changes/{id}/withdraw", tag = "changes", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = WithdrawBody,
    responses((status = 200, body = ChangeDetail), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn withdraw(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<WithdrawBody>,
) -> ApiResult<Json<ChangeDetail>> {
    Ok(Json(s.app.withdraw_change(&u, id, &b.reason).await?))
}

/// An evidence file of a request the caller may see.
#[utoipa::path(get, path = "/api/v1/changes/{id}/evidence/{evidence_id}", tag = "changes", security(("bearer" = [])),
    params(("id" = i64, Path), ("evidence_id" = i64, Path)),
    responses((status = 200, body = Vec<u8>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn evidence(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath((id, evidence_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Response> {
    let (_name, content_type, bytes) = s.app.change_evidence(&u, id, evidence_id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"evidence-{evidence_id}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// Edits non-key fields of a student of the caller's school (民族; the class within the same
/// grade), audited. Key data (姓名, 身份证件, 性别, 出生日期) is refused with `validation_failed`:
/// it changes only through a `key_change` request. A stale `version` is `conflict`.
#[utoipa::path(patch, path = "/api/v1/students/{student_no}", tag = "students", security(("bearer" = [])),
    params(("student_no" = String, Path)), request_body = StudentPatch,
    responses((status = 200, body = StudentDetail), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_student(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(student_no): ApiPath<String>,
    ApiJson(b): ApiJson<StudentPatch>,
) -> ApiResult<Json<StudentDetail>> {
    Ok(Json(s.app.update_student(&u, &student_no, &b).await?))
}
