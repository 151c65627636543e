//! `/api/v1`: the JSON API of API.md, with its OpenAPI document built from the same router.

mod accounts;
mod auth;
mod calendar;
mod changes;
mod dock;
mod notifications;
mod oversight;
mod problems;
mod records;
mod reference;
mod sanctions;
mod transfers;

use axum::Json;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use xueji_app::paging::Paged;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xueji 全国中小学生学籍信息管理系统 API",
        version = "1",
        description = "JSON API of xueji. Errors are application/problem+json with a stable `code`. \
            Lists take `page` and `per_page` and give the total in `X-Total-Count`."
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(accounts::change_password))
        .routes(routes!(accounts::logout_all))
        .routes(routes!(accounts::totp_begin))
        .routes(routes!(accounts::totp_confirm))
        .routes(routes!(accounts::create, accounts::list))
        .routes(routes!(accounts::disable))
        .routes(routes!(accounts::enable))
        .routes(routes!(accounts::password_reset))
        .routes(routes!(accounts::change_role))
        .routes(routes!(accounts::unseal))
        .routes(routes!(accounts::reset_totp))
        .routes(routes!(accounts::totp_exempt))
        .routes(routes!(accounts::audit))
        .routes(routes!(accounts::settings))
        .routes(routes!(reference::regions))
        .routes(routes!(reference::schools))
        .routes(routes!(reference::classes))
        .routes(routes!(reference::students))
        .routes(routes!(reference::student, changes::patch_student))
        .routes(routes!(records::register))
        .routes(routes!(records::template))
        .routes(routes!(records::import))
        .routes(routes!(records::import_report))
        .routes(routes!(records::export))
        .routes(routes!(records::identity_status))
        .routes(routes!(records::run_identity_checks))
        .routes(routes!(sanctions::list, sanctions::record))
        .routes(routes!(sanctions::revoke))
        .routes(routes!(problems::list))
        .routes(routes!(problems::detail))
        .routes(routes!(problems::act))
        .routes(routes!(problems::decide))
        .routes(routes!(problems::blockers))
        .routes(routes!(problems::promote))
        .routes(routes!(problems::archive))
        .routes(routes!(calendar::add_working_days))
        .routes(routes!(calendar::days))
        .routes(routes!(calendar::set_day, calendar::delete_day))
        .routes(routes!(transfers::export))
        .routes(routes!(transfers::evidence))
        .routes(routes!(transfers::file, transfers::list))
        .routes(routes!(transfers::detail))
        .routes(routes!(transfers::review))
        .routes(routes!(transfers::withdraw))
        .routes(routes!(transfers::pull_file))
        .routes(routes!(transfers::paper_file))
        .routes(routes!(oversight::get_policy, oversight::put_policy))
        .routes(routes!(oversight::policy_versions))
        .routes(routes!(oversight::dashboard))
        .routes(routes!(oversight::stale))
        .routes(routes!(oversight::close))
        .routes(routes!(oversight::run_deadlines))
        .routes(routes!(oversight::parent_query))
        .routes(routes!(oversight::statistics))
        .routes(routes!(oversight::statistics_xlsx))
        .routes(changes::with_evidence_limit(routes!(changes::file)))
        .routes(routes!(changes::list))
        .routes(routes!(changes::detail))
        .routes(routes!(changes::review))
        .routes(routes!(changes::withdraw))
        .routes(routes!(changes::evidence))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::mark_read))
        .routes(routes!(dock::hub_key))
        .routes(routes!(dock::events))
        .routes(routes!(dock::ack))
        .routes(routes!(dock::file))
        .routes(routes!(dock::transfer))
        .routes(routes!(dock::decide))
        .routes(routes!(dock::file_document))
        .routes(routes!(dock::provinces))
        .routes(routes!(dock::put_province))
        .routes(routes!(dock::messages))
        .routes(routes!(dock::node_status))
        .routes(routes!(dock::node_todo))
        .routes(routes!(dock::node_decide))
        .routes(routes!(dock::node_file, dock::node_transfers))
        .routes(routes!(dock::node_messages))
}

/// The document as published: every refusal is `application/problem+json` (the handlers'
/// annotations name the `Problem` schema under `application/json`), and every operation has a
/// `default` response, so that any status a client meets (401 on an expired session, 413, 415,
/// 429 …) is documented with its body.
pub fn published(openapi: &utoipa::openapi::OpenApi) -> String {
    let mut doc = serde_json::to_value(openapi).expect("openapi serialises");
    let problem = serde_json::json!({ "$ref": "#/components/schemas/Problem" });
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                    continue;
                }
                let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut())
                else {
                    continue;
                };
                for r in responses.values_mut() {
                    let Some(content) = r.get_mut("content").and_then(|c| c.as_object_mut()) else {
                        continue;
                    };
                    if content
                        .get("application/json")
                        .is_some_and(|m| m["schema"] == problem)
                        && let Some(m) = content.remove("application/json")
                    {
                        content.insert("application/problem+json".into(), m);
                    }
                }
                responses.entry("default").or_insert_with(|| {
                    serde_json::json!({
                        "description": "拒绝或错误：problem+json，`code` 为稳定的错误代码",
                        "content": { "application/problem+json": { "schema": problem } }
                    })
                });
            }
        }
    }
    serde_json::to_string_pretty(&doc).expect("openapi serialises")
}

/// A JSON array with the total in `X-Total-Count`.
pub fn paged<T: Serialize>(p: Paged<T>) -> Response {
    let mut res = Json(p.items).into_response();
    res.headers_mut()
        .insert("x-total-count", HeaderValue::from(p.total));
    res
}
