//! Bad input: always a 4xx with a code, never a 5xx (API.md: "No request ever gets a 500 for bad
//! input").

use reqwest::Method;
use xueji_app::testing::backends;

use crate::{Srv, content_type, expect_problem};

#[tokio::test]
async fn malformed_bodies_are_refused_with_a_code() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let post = |body: &'static str, ct: Option<&'static str>| {
            let mut r = srv.req(Method::POST, "/api/v1/auth/login", None).body(body);
            if let Some(ct) = ct {
                r = r.header("content-type", ct);
            }
            r.send()
        };
        let json = Some("application/json");
        for body in [
            "{\"username\":",
            "not json",
            "",
            "[]",
            "null",
            "{\"username\":\"moe\",\"password\":\"Demo@2026\",\"admin\":true}",
            "{\"username\":1,\"password\":true}",
            "{\"username\":\"moe\"}",
            "{\"username\":\"moe\",\"password\":null}",
        ] {
            let res = post(body, json).await.expect("send");
            expect_problem(res, 422, "validation_failed").await;
        }
        // Not JSON at all.
        let res = post("{\"username\":\"moe\",\"password\":\"Demo@2026\"}", None)
            .await
            .expect("send");
        expect_problem(res, 415, "unsupported_media_type").await;
        let res = post(
            "username=moe&password=Demo%402026",
            Some("application/x-www-form-urlencoded"),
        )
        .await
        .expect("send");
        expect_problem(res, 415, "unsupported_media_type").await;
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_20_mb_body_is_refused_with_413() {
    let srv = Srv::start(xueji_app::Backend::Sqlite).await;
    let token = srv.login("4101050001-admin").await;
    let big = vec![b'a'; 20 * 1024 * 1024];
    for path in ["/api/v1/auth/login", "/api/v1/transfers"] {
        let res = srv
            .req(Method::POST, path, Some(&token))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .expect("the server answers instead of dropping the connection");
        assert_eq!(res.status().as_u16(), 413, "{path}");
    }
    // A body between axum's own limit and the server's limit.
    let mid = format!(
        "{{\"username\":\"{}\",\"password\":\"x\"}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let res = srv
        .req(Method::POST, "/api/v1/auth/login", None)
        .header("content-type", "application/json")
        .body(mid)
        .send()
        .await
        .expect("send");
    let status = res.status().as_u16();
    assert!(
        (400..500).contains(&status),
        "a 5 MB login answers {status}"
    );
    // The server is still fine.
    assert_eq!(
        srv.get("/api/v1/auth/me", &token).await.status().as_u16(),
        200
    );
    srv.stop().await;
}

/// Malformed path parameters (invalid UTF-8, a non-number where an id is expected).
fn bad_path_parameters() -> Vec<(Method, String, Option<String>)> {
    [
        (Method::GET, "/api/v1/students/%FF%FE"),
        (Method::GET, "/api/v1/schools/%FF/classes"),
        (Method::GET, "/api/v1/transfers/abc"),
        (Method::GET, "/api/v1/transfers/99999999999999999999"),
        (Method::POST, "/api/v1/transfers/abc/review"),
        (Method::POST, "/api/v1/transfers/1.5/withdraw"),
    ]
    .into_iter()
    .map(|(m, p)| (m, p.to_string(), Some("{}".to_string())))
    .collect()
}

/// Text holding U+0000: PostgreSQL refuses it in any text value, so it must be refused as
/// bad input before it reaches the database.
fn nul_requests() -> Vec<(Method, String, Option<String>)> {
    let mut v: Vec<(Method, String, Option<String>)> = [
        "/api/v1/students/G%00",
        "/api/v1/students/%00",
        "/api/v1/students?school=%00",
        "/api/v1/students?school=4101050001%00",
        "/api/v1/students?q=%00",
        "/api/v1/students?grade=%00",
        "/api/v1/students?region=%00",
        "/api/v1/schools?region=%00",
        "/api/v1/schools?region=410105%00",
        "/api/v1/schools/%00/classes",
        "/api/v1/regions?parent=%00",
        "/api/v1/calendar/add-working-days?from=%00&days=1",
        "/api/v1/transfers?status=%00",
    ]
    .into_iter()
    .map(|p| (Method::GET, p.to_string(), None))
    .collect();
    for (path, body) in [
        (
            "/api/v1/auth/login",
            r#"{"username":"moe\u0000","password":"x"}"#,
        ),
        (
            "/api/v1/auth/login",
            r#"{"username":"\u0000","password":"\u0000"}"#,
        ),
        (
            "/api/v1/transfers",
            r#"{"from_province":"\u0000","student_name":"\u0000","student_ref":"\u0000","to_grade":"\u0000","to_class_id":1,"reason":"\u0000"}"#,
        ),
        (
            "/api/v1/transfers",
            r#"{"from_province":"440000","student_name":"x\u0000","student_ref":"G440106201001010011","to_grade":"11","to_class_id":1,"reason":"\u0000"}"#,
        ),
        (
            "/api/v1/transfers/1/review",
            r#"{"decision":"reject","opinion":"\u0000"}"#,
        ),
        ("/api/v1/transfers/1/withdraw", r#"{"reason":"\u0000"}"#),
        (
            "/api/v1/transfers/1/paper-file",
            r#"{"action":"sent","note":"\u0000"}"#,
        ),
    ] {
        v.push((Method::POST, path.into(), Some(body.into())));
    }
    v
}

/// Requests a careless or hostile client may send. Each must get a 4xx (or a 2xx where the input
/// is merely unusual), never a 5xx.
fn odd_requests() -> Vec<(Method, String, Option<String>)> {
    let long = "9".repeat(10_000);
    let mut v: Vec<(Method, String, Option<String>)> = [
        "/api/v1/students/'%20OR%201=1--",
        "/api/v1/students?q=%25",
        "/api/v1/students?q=_",
        "/api/v1/students?grade=99",
        "/api/v1/students?region=zzzzzz",
        "/api/v1/students?class_id=abc",
        "/api/v1/students?class_id=99999999999999999999",
        "/api/v1/students?page=99999999999999999999",
        "/api/v1/students?page=9223372036854775807&per_page=500",
        "/api/v1/students?school=4101050001&school=4101050002",
        "/api/v1/regions?parent=%E9%87%91",
        "/api/v1/calendar/add-working-days?from=9999-12-31&days=3660",
        "/api/v1/calendar/add-working-days?from=0001-01-01&days=3660",
        "/api/v1/calendar/add-working-days?from=2024-09-27&days=99999999999999999999",
        "/api/v1/transfers/-1",
        "/api/v1/transfers?todo=maybe",
        "/api/v1/transfers?per_page=0",
        "/api/v1/notifications?per_page=501",
    ]
    .into_iter()
    .map(|p| (Method::GET, p.to_string(), None))
    .collect();
    v.push((Method::GET, format!("/api/v1/students/{long}"), None));
    v.push((Method::GET, format!("/api/v1/students?q={long}"), None));
    v.push((Method::GET, format!("/api/v1/schools?region={long}"), None));
    for body in [
        "{}",
        "{\"from_province\":\"440000\",\"student_name\":\"x\",\"student_ref\":\"G000000000000000000\",\"to_grade\":\"11\",\"to_class_id\":99999999999,\"reason\":\"x\"}",
        "{\"from_province\":\"440000\",\"student_name\":\"x\",\"student_ref\":\"x\",\"to_grade\":\"11\",\"to_class_id\":-1,\"reason\":\"x\"}",
        "{\"from_province\":\"440000\",\"student_name\":\"x\",\"student_ref\":\"x\",\"to_grade\":\"11\",\"to_class_id\":1e999,\"reason\":\"x\"}",
    ] {
        v.push((Method::POST, "/api/v1/transfers".into(), Some(body.into())));
    }
    for path in [
        "/api/v1/transfers/1/review",
        "/api/v1/transfers/1/paper-file",
    ] {
        v.push((Method::POST, path.into(), Some("{}".into())));
    }
    v.push((
        Method::POST,
        "/api/v1/auth/login".into(),
        Some(format!(
            "{{\"username\":\"{long}\",\"password\":\"{long}\"}}"
        )),
    ));
    v.push((Method::DELETE, "/api/v1/students".into(), None));
    v.extend(bad_path_parameters());
    v.push((Method::PUT, "/api/v1/auth/login".into(), Some("{}".into())));
    v
}

#[tokio::test]
async fn odd_requests_never_get_a_5xx() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let token = srv.login("4101050001-admin").await;
        let failures = server_errors(&srv, &token, odd_requests()).await;
        assert!(
            failures.is_empty(),
            "{b:?}: 5xx for bad input:\n{}",
            failures.join("\n")
        );
        // The server is still fine afterwards.
        assert_eq!(
            srv.get("/api/v1/auth/me", &token).await.status().as_u16(),
            200
        );
        srv.stop().await;
    }
}

async fn refusals_without_problem_document(
    srv: &Srv,
    token: &str,
    requests: Vec<(Method, String, Option<String>)>,
) -> Vec<String> {
    let mut failures = vec![];
    for (method, path, body) in requests {
        let mut r = srv.req(method.clone(), &path, Some(token));
        if let Some(body) = body {
            r = r.header("content-type", "application/json").body(body);
        }
        let res = r.send().await.expect("send");
        let status = res.status().as_u16();
        if status >= 400 && status != 405 {
            let ct = content_type(&res);
            let text = res.text().await.unwrap_or_default();
            let code_ok = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_string))
                .is_some_and(|c| {
                    !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
                });
            if !ct.starts_with("application/problem+json") || !code_ok {
                failures.push(format!("{method} {path} → {status} {ct} {text}"));
            }
        }
    }
    failures
}

async fn server_errors(
    srv: &Srv,
    token: &str,
    requests: Vec<(Method, String, Option<String>)>,
) -> Vec<String> {
    let mut failures = vec![];
    for (method, path, body) in requests {
        let mut r = srv.req(method.clone(), &path, Some(token));
        if let Some(body) = body {
            r = r.header("content-type", "application/json").body(body);
        }
        let res = r.send().await.expect("send");
        let status = res.status().as_u16();
        if status >= 500 {
            let text = res.text().await.unwrap_or_default();
            failures.push(format!("{method} {path} → {status} {text}"));
        }
    }
    failures
}

#[tokio::test]
async fn nul_bytes_never_get_a_5xx() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let token = srv.login("4101050001-admin").await;
        let failures = server_errors(&srv, &token, nul_requests()).await;
        assert!(
            failures.is_empty(),
            "{b:?}: 5xx for bad input:\n{}",
            failures.join("\n")
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn api_refusals_are_problem_documents() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let token = srv.login("4101050001-admin").await;
        let bad_paths: Vec<String> = bad_path_parameters().into_iter().map(|r| r.1).collect();
        let requests = odd_requests()
            .into_iter()
            .filter(|r| !bad_paths.contains(&r.1))
            .collect();
        let failures = refusals_without_problem_document(&srv, &token, requests).await;
        assert!(
            failures.is_empty(),
            "{b:?}: refusals without a problem document:\n{}",
            failures.join("\n")
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn malformed_path_parameters_get_problem_documents() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let token = srv.login("4101050001-admin").await;
        let failures = refusals_without_problem_document(&srv, &token, bad_path_parameters()).await;
        assert!(
            failures.is_empty(),
            "{b:?}: refusals without a problem document:\n{}",
            failures.join("\n")
        );
        srv.stop().await;
    }
}
