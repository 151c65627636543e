//! 对接: the machine interface `/api/dock/v1` for docked provinces' systems (signed requests,
//! idempotent POSTs, the event feed), and `/api/v1/dock/*` for the national administrator.
//! Protocol: `docs/docking.md`.

use std::future::Future;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use xueji_app::dock::{
    self, DockAckIn, DockAckOut, DockCaller, DockDecisionIn, DockFeed, DockFilingIn,
    DockMessageOut, DockProvinceIn, DockRequest, DockedProvinceOut, HEADER_IDEMPOTENCY,
    HEADER_PROVINCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, Idem, SignedDocument,
};
use xueji_app::paging::{Page, PageQuery};
use xueji_app::transfers::TransferDetail;
use xueji_domain::{Error, ErrorCode};

use super::paged;
use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, Problem};
use crate::session::ApiUser;

/// The problem document as text (stored as the first answer of an idempotent POST).
fn problem_text(e: &Error) -> (u16, String) {
    let status = e.code.http_status();
    let body = Problem {
        type_: format!("/problems/{}", e.code.as_str()),
        title: e.code.title().to_string(),
        status,
        detail: e.message.clone(),
        code: e.code.as_str().to_string(),
        field: e.field.map(str::to_string),
    };
    (
        status,
        serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()),
    )
}

/// The hub's signature of an answer (see `dock::response_base_string`): (timestamp, signature).
async fn sign_answer(
    s: &AppState,
    req: &DockRequest<'_>,
    status: u16,
    body: &str,
) -> Option<(String, String)> {
    let key = s.app.dock_hub_key().await.ok()?;
    let ts = s.app.clock.now().timestamp().to_string();
    let base = dock::response_base_string(status, req, &ts, body.as_bytes());
    Some((ts, dock::sign_text(&key, &base)))
}

async fn signed_answer(
    s: &AppState,
    req: &DockRequest<'_>,
    status: u16,
    body: String,
    problem: bool,
    replayed: bool,
) -> Response {
    let sig = sign_answer(s, req, status, &body).await;
    let mut res = answer(status, body, problem, replayed);
    if let Some((ts, sig)) = sig
        && let (Ok(ts), Ok(sig)) = (HeaderValue::from_str(&ts), HeaderValue::from_str(&sig))
    {
        res.headers_mut().insert(HEADER_TIMESTAMP, ts);
        res.headers_mut().insert(HEADER_SIGNATURE, sig);
    }
    res
}

fn answer(status: u16, body: String, problem: bool, replayed: bool) -> Response {
    let mut res = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if problem {
            "application/problem+json"
        } else {
            "application/json"
        }),
    );
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies, applies idempotency (POST), runs `f`, stores the answer and logs the exchange.
async fn dock_call<T, F, Fut>(
    s: &AppState,
    method: &Method,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &Bytes,
    f: F,
) -> Response
where
    T: Serialize,
    F: FnOnce(DockCaller) -> Fut,
    Fut: Future<Output = Result<(StatusCode, T), ApiError>>,
{
    let pq = uri
        .0
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.0.path().to_string());
    let req = DockRequest {
        method: method.as_str(),
        path_and_query: &pq,
        province: header_str(headers, HEADER_PROVINCE),
        timestamp: header_str(headers, HEADER_TIMESTAMP),
        signature: header_str(headers, HEADER_SIGNATURE),
        idem_key: header_str(headers, HEADER_IDEMPOTENCY),
        body,
    };
    let caller = match s.app.dock_verify(&req).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let post = method == Method::POST;
    if post {
        match s.app.dock_idem_begin(&caller, &req).await {
            Ok(Idem::Fresh) => {}
            Ok(Idem::Replay { status, body }) => {
                let _ = s.app.dock_log(&req, "received", status, "replayed").await;
                return signed_answer(s, &req, status, body, status >= 400, true).await;
            }
            Err(e) => {
                let (status, text) = problem_text(&ApiError::from(e).0);
                let _ = s
                    .app
                    .dock_log(&req, "received", status, "refused: idempotency")
                    .await;
                return signed_answer(s, &req, status, text, true, false).await;
            }
        }
    }
    let (status, text, problem, outcome) = match f(caller.clone()).await {
        Ok((st, v)) => (
            st.as_u16(),
            serde_json::to_string(&v).unwrap_or_else(|_| "null".into()),
            false,
            "ok".to_string(),
        ),
        Err(e) => {
            let (st, text) = problem_text(&e.0);
            (st, text, true, format!("error: {}", e.0.code.as_str()))
        }
    };
    if post
        && let Some(k) = req.idem_key
        && let Err(e) = s.app.dock_idem_finish(&caller, k, status, &text).await
    {
        return ApiError::from(e).into_response();
    }
    if let Err(e) = s.app.dock_log(&req, "received", status, &outcome).await {
        return ApiError::from(e).into_response();
    }
    signed_answer(s, &req, status, text, problem, false).await
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(Error::new(
            ErrorCode::ValidationFailed,
            format!("请求内容格式有误：{e}"),
        ))
    })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HubKey {
    /// Base64 of the hub's Ed25519 public key; verifies the documents the hub signs.
    pub public_key: String,
}

/// The hub's public key (unsigned, public).
#[utoipa::path(get, path = "/api/dock/v1/hub-key", tag = "dock",
    responses((status = 200, body = HubKey)))]
pub async fn hub_key(State(s): State<AppState>) -> ApiResult<Json<HubKey>> {
    let key = s.app.dock_hub_key().await?;
    Ok(Json(HubKey {
        public_key: xueji_app::dock::public_b64(&key),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct FeedQuery {
    /// Return events with `seq` greater than this (default: the acknowledged position).
    pub after: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// The province's event feed, in order.
#[utoipa::path(get, path = "/api/dock/v1/events", tag = "dock", params(FeedQuery,
        ("X-Dock-Province" = String, Header, description = "The province's 6-digit code"),
        ("X-Dock-Timestamp" = i64, Header, description = "Unix seconds, within ±300 s of the hub"),
        ("X-Dock-Signature" = String, Header, description = "Base64 Ed25519 signature of the base string")),
    responses((status = 200, body = DockFeed), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn events(
    State(s): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> Response {
    let app = s.app.clone();
    dock_call(&s, &method, &uri, &headers, &Bytes::new(), |c| async move {
        Ok((StatusCode::OK, app.dock_events(&c, q.after, q.limit).await?))
    })
    .await
}

/// Acknowledges the feed up to `through`.
#[utoipa::path(post, path = "/api/dock/v1/events/ack", tag = "dock", request_body = DockAckIn, params(
        ("X-Dock-Province" = String, Header), ("X-Dock-Timestamp" = i64, Header), ("X-Dock-Signature" = String, Header),
        ("Idempotency-Key" = String, Header, description = "Unique per message; a repeat returns the first answer")),
    responses((status = 200, body = DockAckOut), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn ack(
    State(s): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let app = s.app.clone();
    let b = body.clone();
    dock_call(&s, &method, &uri, &headers, &body, |c| async move {
        let input: DockAckIn = parse(&b)?;
        Ok((StatusCode::OK, app.dock_ack(&c, input.through).await?))
    })
    .await
}

/// Files an application for a student coming into one of the province's schools.
#[utoipa::path(post, path = "/api/dock/v1/transfers", tag = "dock", request_body = DockFilingIn, params(
        ("X-Dock-Province" = String, Header), ("X-Dock-Timestamp" = i64, Header), ("X-Dock-Signature" = String, Header),
        ("Idempotency-Key" = String, Header)),
    responses((status = 201, body = TransferDetail), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn file(
    State(s): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let app = s.app.clone();
    let b = body.clone();
    dock_call(&s, &method, &uri, &headers, &body, |c| async move {
        let input: DockFilingIn = parse(&b)?;
        Ok((StatusCode::CREATED, app.dock_file(&c, &input).await?))
    })
    .await
}

/// A transfer the province takes part in.
#[utoipa::path(get, path = "/api/dock/v1/transfers/{id}", tag = "dock", params(("id" = i64, Path),
        ("X-Dock-Province" = String, Header), ("X-Dock-Timestamp" = i64, Header), ("X-Dock-Signature" = String, Header)),
    responses((status = 200, body = TransferDetail), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn transfer(
    State(s): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Response {
    let app = s.app.clone();
    dock_call(&s, &method, &uri, &headers, &Bytes::new(), |c| async move {
        Ok((StatusCode::OK, app.dock_transfer(&c, id).await?))
    })
    .await
}

/// A decision (approve/reject) for the province's waiting step, or its school's withdrawal,
/// 调档 or paper-file action.
#[utoipa::path(post, path = "/api/dock/v1/transfers/{id}/decisions", tag = "dock", request_body = DockDecisionIn,
    params(("id" = i64, Path), ("X-Dock-Province" = String, Header), ("X-Dock-Timestamp" = i64, Header),
        ("X-Dock-Signature" = String, Header), ("Idempotency-Key" = String, Header)),
    responses((status = 200, body = TransferDetail), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decide(
    State(s): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> Response {
    let app = s.app.clone();
    let b = body.clone();
    dock_call(&s, &method, &uri, &headers, &body, |c| async move {
        let input: DockDecisionIn = parse(&b)?;
        Ok((StatusCode::OK, app.dock_decide(&c, id, &input).await?))
    })
    .await
}

/// The student's electronic file (电子学籍档案) as a document signed by the hub, for the
/// receiving province once approval has ended.
#[utoipa::path(get, path = "/api/dock/v1/transfers/{id}/file", tag = "dock", params(("id" = i64, Path),
        ("X-Dock-Province" = String, Header), ("X-Dock-Timestamp" = i64, Header), ("X-Dock-Signature" = String, Header)),
    responses((status = 200, body = SignedDocument), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn file_document(
    State(s): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Response {
    let app = s.app.clone();
    let pq = uri.0.path().to_string();
    dock_call(&s, &method, &uri, &headers, &Bytes::new(), |c| async move {
        let req = DockRequest {
            method: "GET",
            path_and_query: &pq,
            province: None,
            timestamp: None,
            signature: None,
            idem_key: None,
            body: &[],
        };
        Ok((StatusCode::OK, app.dock_file_document(&c, id, &req).await?))
    })
    .await
}

// ----- the national administrator -----

/// The docked provinces with their feeds' backlog, oldest unacknowledged event and last contact.
#[utoipa::path(get, path = "/api/v1/dock/provinces", tag = "dock", security(("bearer" = [])),
    responses((status = 200, body = Vec<DockedProvinceOut>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn provinces(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<Vec<DockedProvinceOut>>> {
    Ok(Json(s.app.docked_provinces(&u).await?))
}

/// Docks a province (or replaces its key). Audited.
#[utoipa::path(put, path = "/api/v1/dock/provinces/{code}", tag = "dock", security(("bearer" = [])),
    params(("code" = String, Path, description = "Province code, e.g. 370000")), request_body = DockProvinceIn,
    responses((status = 200, body = DockedProvinceOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_province(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(code): ApiPath<String>,
    ApiJson(b): ApiJson<DockProvinceIn>,
) -> ApiResult<Json<DockedProvinceOut>> {
    Ok(Json(s.app.dock_province(&u, &code, &b).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct MessageQuery {
    /// Only this province's messages.
    pub province: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// The message log (received and sent), newest first.
#[utoipa::path(get, path = "/api/v1/dock/messages", tag = "dock", security(("bearer" = [])), params(MessageQuery),
    responses((status = 200, body = Vec<DockMessageOut>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn messages(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<MessageQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    Ok(paged(
        s.app.dock_messages(&u, q.province.as_deref(), page).await?,
    ))
}

// ----- the provincial node (`xueji serve --mode province`) -----

/// The node's sync state: its cursor in the hub's feed, the last sync, messages not yet delivered.
#[utoipa::path(get, path = "/api/v1/node/status", tag = "dock", security(("bearer" = [])),
    responses((status = 200, body = xueji_app::dock_node::NodeStatus), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn node_status(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<xueji_app::dock_node::NodeStatus>> {
    Ok(Json(s.app.node_status_for(&u).await?))
}

/// On a provincial node: the hub's transfers whose waiting step is the caller's organisation's.
#[utoipa::path(get, path = "/api/v1/node/todo", tag = "dock", security(("bearer" = [])),
    responses((status = 200, body = Vec<xueji_app::dock_node::NodeTransfer>), (status = 401, body = Problem)))]
pub async fn node_todo(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<Vec<xueji_app::dock_node::NodeTransfer>>> {
    Ok(Json(s.app.node_todo(&u).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDecisionBody {
    /// `approve` or `reject`.
    pub decision: String,
    #[serde(default)]
    pub opinion: String,
    /// Paper file: 寄送方式.
    pub method: Option<String>,
}

/// On a provincial node: queues the caller's decision for the hub (delivered by the sync loop,
/// with its idempotency key, until the hub answers). 202: queued.
#[utoipa::path(post, path = "/api/v1/node/transfers/{id}/decisions", tag = "dock", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = NodeDecisionBody,
    responses((status = 202, body = xueji_app::dock_node::NodeMessage), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn node_decide(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<NodeDecisionBody>,
) -> ApiResult<(StatusCode, Json<xueji_app::dock_node::NodeMessage>)> {
    let m = s
        .app
        .node_queue_decision(&u, id, &b.decision, &b.opinion, b.method.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(m)))
}

/// On a provincial node: queues an application (转学申请) for a student coming into the
/// caller's school; the hub's answer is kept with the message (`GET /api/v1/node/messages`).
#[utoipa::path(post, path = "/api/v1/node/transfers", tag = "dock", security(("bearer" = [])),
    request_body = xueji_app::transfers::NewTransfer,
    responses((status = 202, body = xueji_app::dock_node::NodeMessage), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn node_file(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiJson(b): ApiJson<xueji_app::transfers::NewTransfer>,
) -> ApiResult<(StatusCode, Json<xueji_app::dock_node::NodeMessage>)> {
    let m = s.app.node_queue_filing(&u, &b).await?;
    Ok((StatusCode::ACCEPTED, Json(m)))
}

/// On a provincial node: every transfer it has heard of, as the latest event shows it.
#[utoipa::path(get, path = "/api/v1/node/transfers", tag = "dock", security(("bearer" = [])),
    responses((status = 200, body = Vec<xueji_app::dock_node::NodeTransfer>), (status = 401, body = Problem)))]
pub async fn node_transfers(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<Vec<xueji_app::dock_node::NodeTransfer>>> {
    Ok(Json(s.app.node_transfers_for(&u).await?))
}

/// On a provincial node: the messages queued for the hub, newest first, with its answers.
#[utoipa::path(get, path = "/api/v1/node/messages", tag = "dock", security(("bearer" = [])),
    responses((status = 200, body = Vec<xueji_app::dock_node::NodeMessage>), (status = 401, body = Problem)))]
pub async fn node_messages(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
) -> ApiResult<Json<Vec<xueji_app::dock_node::NodeMessage>>> {
    Ok(Json(s.app.node_messages_for(&u).await?))
}
