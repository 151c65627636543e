//! The HTTP face of xueji: the JSON API under `/api/v1` (with its OpenAPI document), the Chinese
//! web UI, and the server's life cycle. Handlers are thin: parse → call the app → render.

pub mod api;
pub mod error;
pub mod gate;
pub mod pages;
pub mod session;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use xueji_app::App;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
}

/// Largest request body accepted at all (evidence uploads are ≤ 2 MB each, a few per form).
pub const MAX_BODY: usize = 12 * 1024 * 1024;

/// The whole application router.
pub fn router(app: App) -> Router {
    let state = AppState { app };
    let (api_router, openapi) = api::router().split_for_parts();
    let openapi_json = api::published(&openapi);
    Router::new()
        .merge(api_router)
        .route(
            "/api/v1/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi_json.clone()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .merge(pages::router())
        .with_state(state)
        .layer(axum::middleware::from_fn(error::refuse_nul))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        ))
        .layer(
            // Spans name the route pattern, never the concrete path: a path may hold a student
            // number, and a formal student number holds an identity number.
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
                tracing::info_span!("request", method = %req.method(), route = %route)
            }),
        )
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi_json() -> String {
    let (_, openapi) = api::router().split_for_parts();
    api::published(&openapi)
}

/// A bound server: its address, and a handle to stop it.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and serves in the background.
    pub async fn start(app: App, addr: &str) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = router(app);
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
        });
        Ok(Server {
            addr,
            shutdown: tx,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in flight finish.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        self.task.await.map_err(std::io::Error::other)?
    }
}
