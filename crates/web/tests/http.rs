//! HTTP tests: the real server on port 0, driven over TCP with reqwest, on every configured
//! backend (SQLite always; PostgreSQL too when `XUEJI_TEST_DATABASE_URL` is set). They check the
//! contract of record (API.md). One binary for the crate (DESIGN.md §5).

#[path = "http/accounts.rs"]
mod accounts;
#[path = "http/auth.rs"]
mod auth;
#[path = "http/bad_input.rs"]
mod bad_input;
#[path = "http/changes.rs"]
mod changes;
#[path = "http/dock.rs"]
mod dock;
#[path = "http/hardening.rs"]
mod hardening;
#[path = "http/lists.rs"]
mod lists;
#[path = "http/matrix.rs"]
mod matrix;
#[path = "http/policy.rs"]
mod policy;
#[path = "http/problems.rs"]
mod problems;
#[path = "http/reference.rs"]
mod reference;
#[path = "http/transfers.rs"]
mod transfers;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use xueji_app::testing::demo_app;
use xueji_app::{App, Backend};
use xueji_web::Server;

pub const PASSWORD: &str = "Demo@2026";

/// A running server over a fresh copy of the demo dataset.
pub struct Srv {
    pub backend: Backend,
    /// The same application the server runs (its clock can be moved).
    pub app: App,
    pub base: String,
    pub client: reqwest::Client,
    server: Server,
}

impl Srv {
    pub async fn start(backend: Backend) -> Srv {
        let app = demo_app(backend).await;
        let server = Server::start(app.clone(), "127.0.0.1:0")
            .await
            .expect("bind port 0");
        assert_ne!(server.addr.port(), 0, "a real port was bound");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Srv {
            backend,
            app,
            base: server.url(),
            client,
            server,
        }
    }

    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.req(Method::GET, path, Some(token))
            .send()
            .await
            .expect("GET")
    }

    /// Logs in through the API and returns the bearer token.
    pub async fn login(&self, username: &str) -> String {
        let res = self.try_login(username, PASSWORD).await;
        assert_eq!(
            res.status().as_u16(),
            200,
            "{:?}: login {username}",
            self.backend
        );
        let body: Value = res.json().await.expect("login JSON");
        assert_eq!(body["user"]["username"], username);
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn try_login(&self, username: &str, password: &str) -> Response {
        self.req(Method::POST, "/api/v1/auth/login", None)
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("POST login")
    }

    /// Signs in through the login page like a browser; the client keeps the session cookie.
    pub async fn web_login(&self, username: &str) -> reqwest::Client {
        let c = reqwest::Client::builder()
            .no_proxy()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let form = c
            .get(format!("{}/login", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = hidden_csrf(&form);
        let res = c
            .post(format!("{}/login", self.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("username", username),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "web login {username}");
        c
    }

    /// Stops the server and drops the test's PostgreSQL database.
    pub async fn stop(self) {
        self.server.stop().await.expect("graceful stop");
        dispose(&self.app).await;
    }
}

async fn dispose(app: &App) {
    xueji_app::testing::dispose(&app.db).await;
}

/// A demo account signed in at the use-case level (fixtures made without HTTP).
pub async fn user_of(app: &App, username: &str) -> xueji_app::auth::CurrentUser {
    app.login(
        username,
        PASSWORD,
        "198.51.100.9",
        xueji_app::auth::SessionKind::Api,
    )
    .await
    .unwrap_or_else(|e| panic!("login {username}: {e}"))
    .user
}

/// The first `_csrf` hidden field of a page.
pub fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..].split('"').next().unwrap().to_string()
}

pub fn content_type(res: &Response) -> String {
    res.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Sends `body` as JSON with the bearer token.
pub async fn send(s: &Srv, method: Method, tok: &str, path: &str, body: Value) -> Response {
    s.req(method, path, Some(tok))
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// POSTs `body` as JSON with the bearer token.
pub async fn post(s: &Srv, tok: &str, path: &str, body: Value) -> Response {
    send(s, Method::POST, tok, path, body).await
}

/// The answer's JSON, after asserting its status (the body is shown when it differs).
pub async fn ok(res: Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let body = res.text().await.expect("body");
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Asserts a problem document (API.md: `application/problem+json` with `type`, `title`,
/// `status`, `detail`, `code`) with this status and code.
pub async fn expect_problem(res: Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let ct = content_type(&res);
    let body = res.text().await.expect("body");
    assert_eq!(got, status, "status; body: {body}");
    assert!(
        ct.starts_with("application/problem+json"),
        "content-type {ct:?}; body: {body}"
    );
    let v: Value = serde_json::from_str(&body).expect("problem JSON");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status, "{v}");
    for k in ["type", "title", "detail"] {
        assert!(v[k].is_string(), "problem.{k} missing: {v}");
    }
    v
}

/// `X-Total-Count` of a list answer.
pub fn total(res: &Response) -> i64 {
    res.headers()
        .get("x-total-count")
        .expect("X-Total-Count")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a number")
}

/// The method/path pairs of API.md's JSON API.
pub const API_MD_OPERATIONS: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/regions"),
    ("get", "/api/v1/schools"),
    ("get", "/api/v1/schools/{code}/classes"),
    ("get", "/api/v1/students"),
    ("get", "/api/v1/students/{student_no}"),
    ("post", "/api/v1/transfers"),
    ("get", "/api/v1/transfers"),
    ("get", "/api/v1/transfers/{id}"),
    ("post", "/api/v1/transfers/{id}/review"),
    ("post", "/api/v1/transfers/{id}/withdraw"),
    ("post", "/api/v1/transfers/{id}/pull-file"),
    ("post", "/api/v1/transfers/{id}/paper-file"),
    ("get", "/api/v1/calendar/add-working-days"),
    ("get", "/api/v1/notifications"),
];

/// The published OpenAPI document is pinned: a change to the API shows up as a snapshot diff
/// (accept it with `INSTA_UPDATE=always` or `cargo insta review` when intended).
#[test]
fn openapi_document_snapshot() {
    insta::assert_snapshot!("openapi", xueji_web::openapi_json());
}

#[test]
fn openapi_document_lists_every_operation_of_api_md() {
    let doc: Value = serde_json::from_str(&xueji_web::openapi_json()).expect("valid JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "OpenAPI 3.x"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = vec![];
    for (method, path) in API_MD_OPERATIONS {
        if paths.get(*path).and_then(|p| p.get(*method)).is_none() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(
        missing.is_empty(),
        "API.md operations missing from the OpenAPI document: {missing:?}"
    );
    // Error answers are documented as problem documents.
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn served_openapi_document_is_the_published_one_and_every_path_is_routed() {
    let srv = Srv::start(Backend::Sqlite).await;
    let res = srv
        .req(Method::GET, "/api/v1/openapi.json", None)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status().as_u16(), 200);
    assert!(content_type(&res).starts_with("application/json"));
    let served: Value = res.json().await.expect("valid JSON");
    let published: Value = serde_json::from_str(&xueji_web::openapi_json()).expect("JSON");
    assert_eq!(served, published);
    // Every documented operation is answered by a handler (not the router's bare 404/405).
    let token = srv.login("moe").await;
    for (path, item) in published["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if path == "/api/v1/auth/logout" {
                continue; // would end the token used for the rest
            }
            let concrete = concrete_path(path);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let res = srv
                .req(m, &concrete, Some(&token))
                .send()
                .await
                .expect("send");
            let status = res.status().as_u16();
            let ct = content_type(&res);
            assert!(
                status != 405 && (status != 404 || ct.starts_with("application/problem+json")),
                "{method} {path} is documented but not routed ({status} {ct})"
            );
        }
    }
    srv.stop().await;
}

/// A documented path with its parameters filled in.
fn concrete_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("closing brace") + open;
        out.push_str(&rest[..open]);
        out.push_str(match &rest[open + 1..close] {
            "code" => "4101050001",
            "student_no" => "G410105201001010011",
            _ => "999999",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn healthz_answers() {
    let srv = Srv::start(Backend::Sqlite).await;
    let res = srv
        .req(Method::GET, "/healthz", None)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status().as_u16(), 200);
    srv.stop().await;
}
