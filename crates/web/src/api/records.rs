//! Student records: 学籍注册, the Excel template, import and export, and 公安比对.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use xueji_app::identity::{IdentityRunReport, IdentityStatus, SimulatedIdentityService};
use xueji_app::import::{
    Commit, ImportOptions, ImportReport, XLSX_MIME, XlsxSource, import_report_xlsx, no_progress,
};
use xueji_app::registration::{NewStudent, Registered};
use xueji_app::students::StudentFilter;
use xueji_domain::{Error, ErrorCode};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, Problem};
use crate::session::ApiUser;

/// Most records one identity-check run takes.
const MAX_CHECK_LIMIT: usize = 10_000;

fn xlsx(bytes: Vec<u8>, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, XLSX_MIME.to_string()),
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

/// 学籍注册: the caller's school registers one student. Answers 201 with the record (a
/// temporary `L` number, `identity_status` `pending` until 公安比对). A document already on record
/// anywhere is `duplicate_person` (409); the same name, gender and birth date without a document
/// match is `suspected_duplicate` (409) unless `confirm_suspected` is true.
#[utoipa::path(post, path = "/api/v1/students", tag = "students", security(("bearer" = [])),
    request_body = NewStudent,
    responses((status = 201, body = Registered), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiJson(body): ApiJson<NewStudent>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.app.register_student(&u, &body).await?),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TemplateQuery {
    /// 学校标识码.
    pub school: String,
}

/// The import template (.xlsx) of a school: Chinese headers, drop-down lists for 性别, 民族,
/// 证件类型, 年级 and the school's 班级.
#[utoipa::path(get, path = "/api/v1/students/template.xlsx", tag = "students", security(("bearer" = [])),
    params(TemplateQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn template(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<TemplateQuery>,
) -> ApiResult<Response> {
    let bytes = s.app.student_template(&u, &q.school).await?;
    Ok(xlsx(
        bytes,
        &format!("students-template-{}.xlsx", q.school.trim()),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// 学校标识码 of the caller's school.
    pub school: String,
    /// `true`: write the valid rows (the others are reported); `false` (default): validate only.
    #[serde(default)]
    pub commit: bool,
    /// `true`: rows that are suspected duplicates (疑似重复) are written too, each with an open
    /// problem record.
    #[serde(default)]
    pub confirm_suspected: bool,
}

/// The uploaded workbook, or a problem: not an .xlsx content type, empty, or too large. The
/// body is read here rather than by the `Bytes` extractor, whose default limit (2 MB) is below a
/// 100,000-row file; the server-wide limit (`MAX_BODY`) still holds.
async fn workbook_body(headers: &HeaderMap, body: Body) -> Result<XlsxSource, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if ct != XLSX_MIME && ct != "application/octet-stream" {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("请上传.xlsx文件（Content-Type: {XLSX_MIME}）"),
        )
        .into());
    }
    let too_large = || {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "文件过大（上限{}MB）：请拆分为多个文件后分别导入",
                crate::MAX_BODY / (1024 * 1024)
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > crate::MAX_BODY) {
        return Err(too_large().into());
    }
    // A read that fails here is the server-wide limit on a body without a length, or an upload
    // that broke off.
    let body = axum::body::to_bytes(body, crate::MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    if body.is_empty() {
        return Err(Error::validation("file", "请上传填写好的.xlsx文件").into());
    }
    Ok(XlsxSource::Bytes(Arc::new(body.to_vec())))
}

/// Imports students from an .xlsx of the template's columns (the request body). Every row is
/// validated first; the answer lists each wrong cell (row, column, what is wrong and how to fix
/// it). Nothing is written unless `commit=true`, and then exactly the valid rows.
#[utoipa::path(post, path = "/api/v1/students/import", tag = "students", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content = Vec<u8>, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    responses((status = 200, body = ImportReport), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn import(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ImportReport>> {
    let source = workbook_body(&headers, body).await?;
    let opts = ImportOptions {
        commit: if q.commit {
            Commit::ValidRows
        } else {
            Commit::Never
        },
        confirm_suspected: q.confirm_suspected,
    };
    Ok(Json(
        s.app
            .import_students(&u, &q.school, source, opts, &no_progress)
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReportQuery {
    /// 学校标识码 of the caller's school.
    pub school: String,
    #[serde(default)]
    pub confirm_suspected: bool,
}

/// The import report of an uploaded file as an .xlsx (导入报告): validates only, never writes.
#[utoipa::path(post, path = "/api/v1/students/import/report.xlsx", tag = "students", security(("bearer" = [])),
    params(ReportQuery),
    request_body(content = Vec<u8>, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn import_report(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<ReportQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let source = workbook_body(&headers, body).await?;
    let opts = ImportOptions {
        commit: Commit::Never,
        confirm_suspected: q.confirm_suspected,
    };
    let report = s
        .app
        .import_students(&u, &q.school, source, opts, &no_progress)
        .await?;
    let bytes = tokio::task::spawn_blocking(move || import_report_xlsx(&report))
        .await
        .map_err(|_| ApiError::from(ErrorCode::Internal))??;
    Ok(xlsx(bytes, "import-report.xlsx"))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// 学校标识码.
    pub school: Option<String>,
    /// Region subtree (authorities).
    pub region: Option<String>,
    pub grade: Option<String>,
    pub class_id: Option<i64>,
    /// Name prefix or exact student number.
    pub q: Option<String>,
}

/// The student list (same filters as `GET /api/v1/students`) as an .xlsx, identity numbers
/// masked; every export is audited.
#[utoipa::path(get, path = "/api/v1/students.xlsx", tag = "students", security(("bearer" = [])),
    params(ExportQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn export(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let filter = StudentFilter {
        school: q.school,
        region: q.region,
        grade: q.grade,
        class_id: q.class_id,
        q: q.q,
    };
    let bytes = s.app.export_students(&u, &filter).await?;
    Ok(xlsx(bytes, "students.xlsx"))
}

/// The identity check (公安比对) for the caller's scope: the adapter — `simulated: true` while the
/// Ministry of Public Security's service is not connected — and the records waiting.
#[utoipa::path(get, path = "/api/v1/identity-checks", tag = "students", security(("bearer" = [])),
    responses((status = 200, body = IdentityStatus), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn identity_status(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<IdentityStatus>> {
    Ok(Json(
        s.app
            .identity_status(&u, SimulatedIdentityService::shared())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunQuery {
    /// Most records to check in this run (default 1000, at most 10000).
    pub limit: Option<usize>,
}

/// Runs the identity check (公安比对) for the pending records of the caller's province (the
/// national administrator: the nation): a match gets its formal `G` number, a failure becomes a
/// problem record. The answer says whether the adapter was simulated.
#[utoipa::path(post, path = "/api/v1/identity-checks/run", tag = "students", security(("bearer" = [])),
    params(RunQuery),
    responses((status = 200, body = IdentityRunReport), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn run_identity_checks(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<RunQuery>,
) -> ApiResult<Json<IdentityRunReport>> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=MAX_CHECK_LIMIT).contains(&limit) {
        return Err(Error::validation("limit", "limit 应在1到10000之间").into());
    }
    Ok(Json(
        s.app
            .run_identity_checks_as(&u, SimulatedIdentityService::shared(), limit)
            .await?,
    ))
}
