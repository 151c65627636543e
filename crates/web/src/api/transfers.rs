//! `/api/v1/transfers`: 跨省转学 and 省内转学 share one resource.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use xueji_app::paging::{Page, PageQuery};
use xueji_app::transfers::{NewTransfer, TransferDetail, TransferFilter, TransferSummary};
use xueji_domain::Error;

use super::paged;
use crate::AppState;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, Problem};
use crate::session::ApiUser;

/// Files a transfer application (转学申请) for the caller's school.
#[utoipa::path(post, path = "/api/v1/transfers", tag = "transfers", security(("bearer" = [])),
    request_body = NewTransfer,
    responses((status = 201, body = TransferDetail), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn file(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiJson(body): ApiJson<NewTransfer>,
) -> ApiResult<(StatusCode, Json<TransferDetail>)> {
    let t = s.app.file_transfer(&u, &body, vec![]).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub status: Option<String>,
    pub kind: Option<String>,
    /// Only those waiting for the caller's organisation.
    pub todo: Option<bool>,
    /// Student name prefix or exact student number.
    pub q: Option<String>,
    pub from_date: Option<chrono::NaiveDate>,
    pub to_date: Option<chrono::NaiveDate>,
    pub overdue: Option<bool>,
    /// `in` or `out`.
    pub direction: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

impl ListQuery {
    fn filter(&self) -> TransferFilter {
        TransferFilter {
            status: self.status.clone(),
            kind: self.kind.clone(),
            todo: self.todo,
            q: self.q.clone(),
            from_date: self.from_date,
            to_date: self.to_date,
            overdue: self.overdue,
            direction: self.direction.clone(),
        }
    }
}

/// The transfers the caller's organisation takes part in (authorities: those of the schools they
/// supervise).
#[utoipa::path(get, path = "/api/v1/transfers", tag = "transfers", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Vec<TransferSummary>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    let f = q.filter();
    Ok(paged(s.app.transfers(&u, &f, page).await?))
}

/// The detail (明细): every step of the chain in order, those not yet reached included.
#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "transfers", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = TransferDetail), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn detail(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TransferDetail>> {
    Ok(Json(s.app.transfer(&u, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `approve` (同意) or `reject` (不同意).
    pub decision: String,
    /// 审核意见; required when rejecting.
    #[serde(default)]
    pub opinion: String,
}

/// 审核: the current step's party decides.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/review", tag = "transfers", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ReviewBody,
    responses((status = 200, body = TransferDetail), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn review(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<ReviewBody>,
) -> ApiResult<Json<TransferDetail>> {
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
        s.app.review_transfer(&u, id, approve, &b.opinion).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    /// 撤销理由.
    pub reason: String,
}

/// 撤销: the receiving school ends its application before approval ends.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/withdraw", tag = "transfers", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = WithdrawBody,
    responses((status = 200, body = TransferDetail), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn withdraw(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<WithdrawBody>,
) -> ApiResult<Json<TransferDetail>> {
    Ok(Json(s.app.withdraw_transfer(&u, id, &b.reason).await?))
}

/// 调档: after every approval the receiving school pulls the electronic file; the student is
/// enrolled at the receiving school from then on.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/pull-file", tag = "transfers", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = TransferDetail), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn pull_file(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TransferDetail>> {
    Ok(Json(s.app.pull_file(&u, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaperBody {
    /// `sent` (by the sending school) or `received` (by the receiving school).
    pub action: String,
    #[serde(default)]
    pub note: String,
    /// 寄送方式 (for `sent`), e.g. EMS, 专人送达.
    #[serde(default)]
    pub method: Option<String>,
}

/// 纸质档案: the sending school records it sent, the receiving school received.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/paper-file", tag = "transfers", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = PaperBody,
    responses((status = 200, body = TransferDetail), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn paper_file(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<PaperBody>,
) -> ApiResult<Json<TransferDetail>> {
    let sent = match b.action.as_str() {
        "sent" => true,
        "received" => false,
        _ => {
            return Err(Error::validation(
                "action",
                "action 应为 sent（已寄出）或 received（已接收）",
            )
            .into());
        }
    };
    Ok(Json(
        s.app
            .paper_file(&u, id, sent, b.method.as_deref(), &b.note)
            .await?,
    ))
}

/// The current filter of the transfer query as an .xlsx workbook (导出); audited.
#[utoipa::path(get, path = "/api/v1/transfers.xlsx", tag = "transfers", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn export(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let f = q.filter();
    let bytes = s.app.export_transfers(&u, &f).await?;
    Ok(xlsx_response(bytes, "transfers.xlsx"))
}

/// An .xlsx download.
pub fn xlsx_response(bytes: Vec<u8>, filename: &str) -> Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response()
}

/// An evidence file of a transfer the caller may see.
#[utoipa::path(get, path = "/api/v1/transfers/{id}/evidence/{evidence_id}", tag = "transfers", security(("bearer" = [])),
    params(("id" = i64, Path), ("evidence_id" = i64, Path)),
    responses((status = 200, body = Vec<u8>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn evidence(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath((id, evidence_id)): ApiPath<(i64, i64)>,
) -> ApiResult<Response> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let (_name, content_type, bytes) = s.app.transfer_evidence(&u, id, evidence_id).await?;
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
