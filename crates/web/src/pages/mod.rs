//! The Chinese web UI (server-rendered; works without JavaScript).

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
