//! Login, bearer tokens, logout, lockout — over HTTP.

use chrono::Duration;
use reqwest::Method;
use serde_json::Value;
use xueji_app::testing::{backends, test_clock};

use crate::{PASSWORD, Srv, content_type, expect_problem};

#[tokio::test]
async fn login_gives_a_token_that_authenticates() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let res = srv.try_login("edu410105", PASSWORD).await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        assert!(content_type(&res).starts_with("application/json"));
        let body: Value = res.json().await.expect("JSON");
        let token = body["token"].as_str().expect("token");
        assert!(token.len() >= 32, "{b:?}: a long random token");
        assert_eq!(body["user"]["username"], "edu410105");
        assert_eq!(body["user"]["role"], "authority_admin");
        assert!(body["user"].get("password_hash").is_none());
        let me: Value = srv
            .get("/api/v1/auth/me", token)
            .await
            .json()
            .await
            .expect("me");
        assert_eq!(me["username"], "edu410105", "{b:?}");
        assert_eq!(me["org_code"], "410105", "{b:?}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn without_a_valid_token_every_call_is_401_problem_json() {
    for b in backends() {
        let srv = Srv::start(b).await;
        for path in [
            "/api/v1/students?school=4101050001",
            "/api/v1/students/G410105201001010011",
            "/api/v1/schools",
            "/api/v1/regions",
            "/api/v1/auth/me",
        ] {
            let res = srv.req(Method::GET, path, None).send().await.expect("GET");
            assert_eq!(
                res.headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{b:?}: {path}"
            );
            expect_problem(res, 401, "unauthenticated").await;
            for bad in ["not-a-token", &"a".repeat(64), ""] {
                let res = srv
                    .req(Method::GET, path, Some(bad))
                    .send()
                    .await
                    .expect("GET");
                expect_problem(res, 401, "unauthenticated").await;
            }
        }
        let res = srv
            .req(Method::GET, "/api/v1/schools", None)
            .header("authorization", "Basic bW9lOkRlbW9AMjAyNg==")
            .send()
            .await
            .expect("GET");
        expect_problem(res, 401, "unauthenticated").await;
        srv.stop().await;
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_the_same_401() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let known =
            expect_problem(srv.try_login("moe", "wrong").await, 401, "unauthenticated").await;
        let unknown = expect_problem(
            srv.try_login("nobody", "wrong").await,
            401,
            "unauthenticated",
        )
        .await;
        assert_eq!(known["title"], unknown["title"], "{b:?}");
        assert_eq!(known["type"], unknown["type"], "{b:?}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn logout_ends_the_token() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let token = srv.login("4101050001-admin").await;
        let other = srv.login("4101050001-admin").await;
        assert_eq!(
            srv.get("/api/v1/auth/me", &token).await.status().as_u16(),
            200
        );
        let res = srv
            .req(Method::POST, "/api/v1/auth/logout", Some(&token))
            .send()
            .await
            .expect("logout");
        assert!(res.status().is_success(), "{b:?}: logout {}", res.status());
        expect_problem(
            srv.get("/api/v1/auth/me", &token).await,
            401,
            "unauthenticated",
        )
        .await;
        expect_problem(
            srv.get("/api/v1/students", &token).await,
            401,
            "unauthenticated",
        )
        .await;
        // Logging out again with the dead token is refused; the user's other session lives on.
        let again = srv
            .req(Method::POST, "/api/v1/auth/logout", Some(&token))
            .send()
            .await
            .expect("logout");
        expect_problem(again, 401, "unauthenticated").await;
        assert_eq!(
            srv.get("/api/v1/auth/me", &other).await.status().as_u16(),
            200,
            "{b:?}"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn lockout_over_http() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let t0 = test_clock().now();
        for _ in 0..5 {
            expect_problem(
                srv.try_login("4101020001-admin", "wrong").await,
                401,
                "unauthenticated",
            )
            .await;
        }
        let locked = srv.try_login("4101020001-admin", "wrong").await;
        let status = locked.status().as_u16();
        assert!(
            status == 429 || status == 403,
            "{b:?}: locked answers {status}"
        );
        expect_problem(locked, status, "account_locked").await;
        expect_problem(
            srv.try_login("4101020001-admin", PASSWORD).await,
            status,
            "account_locked",
        )
        .await;
        srv.app.clock.set(t0 + Duration::minutes(16));
        srv.login("4101020001-admin").await;
        srv.stop().await;
    }
}
