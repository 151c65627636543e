//! Errors as `application/problem+json` (RFC 9457) with the stable `code` of API.md, and the
//! JSON/query extractors that turn every malformed request into a 4xx with a code — never a 500.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use xueji_app::AppError;
use xueji_domain::{Error, ErrorCode};

/// The problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `/problems/{code}`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short Chinese title.
    pub title: String,
    pub status: u16,
    /// What is wrong and what to do, in Chinese.
    pub detail: String,
    /// Stable snake_case code, e.g. `not_found`, `transfer_in_progress`.
    pub code: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An API error response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        if !matches!(e, AppError::Domain(_)) {
            // Storage details go to the log only; the message never holds request data.
            tracing::error!(error = %e, "request failed");
        }
        ApiError(e.to_domain())
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError(Error::new(code, code.title()))
    }
}

pub fn problem_response(e: &Error) -> Response {
    let status = e.code.http_status();
    let body = Problem {
        type_: format!("/problems/{}", e.code.as_str()),
        title: e.code.title().to_string(),
        status,
        detail: e.message.clone(),
        code: e.code.as_str().to_string(),
        field: e.field.map(str::to_string),
    };
    let mut res = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if e.code == ErrorCode::Unauthenticated {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.0)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `Json<T>` whose rejections are problem documents with codes.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    let code = match rej.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        _ => ErrorCode::ValidationFailed,
    };
    let detail = match code {
        ErrorCode::PayloadTooLarge => "请求内容过大".to_string(),
        ErrorCode::UnsupportedMediaType => {
            "请求须为 JSON（Content-Type: application/json）".to_string()
        }
        // serde's message names the field and the expected type; it holds no request values
        // beyond the field name.
        _ => format!("请求内容格式有误：{}", rej.body_text()),
    };
    ApiError(Error::new(code, detail))
}

/// `Query<T>` whose rejections are problem documents with codes.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError(Error::new(
        ErrorCode::ValidationFailed,
        format!("查询参数有误：{}", rej.body_text()),
    ))
}

/// `Path<T>` whose rejections (a non-numeric id, an out-of-range number, bad UTF-8) are problem
/// documents with a code, like every other API error.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rej) => Err(ApiError(Error::new(
                ErrorCode::NotFound,
                format!("路径参数无效：{}", rej.body_text()),
            ))),
        }
    }
}

/// Refuses NUL characters anywhere in the request line or in JSON and form bodies: no field of
/// this system may hold one, and PostgreSQL rejects them in text (which would be a 500).
pub async fn refuse_nul(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let nul = || {
        problem_response(&Error::new(
            ErrorCode::ValidationFailed,
            "请求中含有非法的空字符（NUL）",
        ))
    };
    // Read in place: this runs on every request. A scheme holds no `%`.
    let uri = req.uri();
    if uri.authority().is_some_and(|a| a.as_str().contains("%00"))
        || uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str().contains("%00"))
    {
        return nul();
    }
    let ct = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(ct.starts_with("application/json") || ct.starts_with("application/x-www-form-urlencoded"))
    {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return problem_response(&Error::new(ErrorCode::PayloadTooLarge, "请求内容过大")),
    };
    let lower = bytes.to_ascii_lowercase();
    if bytes.contains(&0)
        || lower.windows(6).any(|w| w == b"\\u0000")
        || lower.windows(3).any(|w| w == b"%00")
    {
        return nul();
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}
