//! Account security over HTTP: the forced password change (API refusal, page redirect), the
//! password API, logout everywhere, TOTP at login (API and page), per-address throttling with
//! identical answers for unknown users, sealing and unsealing, and 三员分立 (the separated
//! administrators reach only their own routes).

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};
use xueji_app::accounts::totp_code;
use xueji_app::testing::{backends, test_clock};

use crate::{PASSWORD, Srv, expect_problem, hidden_csrf, post, total};

fn web_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Posts the login form; returns the client (with any session cookie) and the answer.
async fn web_login_with(
    srv: &Srv,
    c: &reqwest::Client,
    username: &str,
    password: &str,
    totp: &str,
) -> reqwest::Response {
    let form = c
        .get(format!("{}/login", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&form);
    c.post(format!("{}/login", srv.base))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
            ("totp", totp),
        ])
        .send()
        .await
        .unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn an_initial_password_must_be_changed_before_anything_else() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let sys = srv.login("sysadmin").await;
        let account = json!({
            "username": "newbie", "display_name": "新管理员", "role": "school_admin",
            "org_code": "4101050001", "initial_password": "Init#Pass2026",
        });
        let moe = srv.login("moe").await;
        expect_problem(
            post(&srv, &moe, "/api/v1/accounts", account.clone()).await,
            403,
            "forbidden",
        )
        .await;
        let res = post(&srv, &sys, "/api/v1/accounts", account).await;
        assert_eq!(res.status().as_u16(), 201, "{b:?}");
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["must_change_password"], true);

        // API: the login works, every call but auth/* is refused until the change.
        let res = srv.try_login("newbie", "Init#Pass2026").await;
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["user"]["must_change_password"], true, "{b:?}");
        let token = body["token"].as_str().unwrap().to_string();
        expect_problem(
            srv.get("/api/v1/students?school=4101050001", &token).await,
            403,
            "password_change_required",
        )
        .await;
        assert_eq!(srv.get("/api/v1/auth/me", &token).await.status(), 200);
        let weak = expect_problem(
            post(
                &srv,
                &token,
                "/api/v1/auth/password",
                json!({"old": "Init#Pass2026", "new": "newbie12345"}),
            )
            .await,
            422,
            "weak_password",
        )
        .await;
        assert_eq!(weak["field"], "new", "{weak}");
        let wrong_old = expect_problem(
            post(
                &srv,
                &token,
                "/api/v1/auth/password",
                json!({"old": "nope", "new": "Mine#Pass2026"}),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(wrong_old["field"], "old");
        let res = post(
            &srv,
            &token,
            "/api/v1/auth/password",
            json!({"old": "Init#Pass2026", "new": "Mine#Pass2026"}),
        )
        .await;
        assert_eq!(res.status().as_u16(), 204, "{b:?}");
        assert_eq!(
            srv.get("/api/v1/students?school=4101050001", &token)
                .await
                .status(),
            200,
            "{b:?}: free after the change"
        );

        // Pages: a second new account is sent to the change form from every page.
        srv.app
            .create_account(
                &srv.app
                    .user_by_id(created["id"].as_i64().unwrap())
                    .await
                    .unwrap()
                    .unwrap(),
                serde_json::from_value(json!({
                    "username": "newbie2", "display_name": "新审核员", "role": "school_reviewer",
                    "org_code": "4101050001", "initial_password": "Init#Pass2026",
                }))
                .unwrap(),
            )
            .await
            .expect_err("a school administrator creates no accounts");
        let res = post(
            &srv,
            &sys,
            "/api/v1/accounts",
            json!({
                "username": "newbie2", "display_name": "新审核员", "role": "school_reviewer",
                "org_code": "4101050001", "initial_password": "Init#Pass2026",
            }),
        )
        .await;
        assert_eq!(res.status().as_u16(), 201);
        let c = web_client();
        let res = web_login_with(&srv, &c, "newbie2", "Init#Pass2026", "").await;
        assert_eq!(res.status().as_u16(), 303);
        for path in ["/", "/students", "/transfers"] {
            let res = c.get(format!("{}{path}", srv.base)).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 303, "{b:?}: {path}");
            assert_eq!(location(&res), "/account/password", "{path}");
        }
        let page = c
            .get(format!("{}/account/password", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("初始密码"), "{b:?}: says why");
        let csrf = hidden_csrf(&html);
        let res = c
            .post(format!("{}/account/password", srv.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("old", "Init#Pass2026"),
                ("new", "short"),
                ("confirm", "short"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        assert!(res.text().await.unwrap().contains("密码长度至少为10位"));
        let res = c
            .post(format!("{}/account/password", srv.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("old", "Init#Pass2026"),
                ("new", "Mine#Pass2026"),
                ("confirm", "Mine#Pass2026"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "{b:?}");
        let res = c
            .get(format!("{}/students", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{b:?}: the session goes on");
        srv.stop().await;
    }
}

#[tokio::test]
async fn logout_everywhere_ends_every_token_and_the_page_session() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let a = srv.login("edu410105").await;
        let other = srv.login("edu410105").await;
        let web = srv.web_login("edu410105").await;
        let res = post(&srv, &a, "/api/v1/auth/logout-all", json!({})).await;
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["sessions_ended"], 3, "{b:?}");
        for t in [&a, &other] {
            expect_problem(srv.get("/api/v1/auth/me", t).await, 401, "unauthenticated").await;
        }
        let res = web.get(format!("{}/", srv.base)).send().await.unwrap();
        assert_eq!(location(&res), "/login", "{b:?}");

        // The page button does the same.
        let web = srv.web_login("moe").await;
        let token = srv.login("moe").await;
        let html = web
            .get(format!("{}/account", srv.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("退出所有设备上的登录"));
        let res = web
            .post(format!("{}/account/logout-all", srv.base))
            .form(&[("_csrf", hidden_csrf(&html).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        assert_eq!(location(&res), "/login");
        expect_problem(
            srv.get("/api/v1/auth/me", &token).await,
            401,
            "unauthenticated",
        )
        .await;
        srv.stop().await;
    }
}

#[tokio::test]
async fn unknown_users_get_the_same_answer_until_the_address_is_throttled() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let known = expect_problem(
            srv.try_login("edu410105", "x").await,
            401,
            "unauthenticated",
        )
        .await;
        let unknown = expect_problem(
            srv.try_login("edu999999", "x").await,
            401,
            "unauthenticated",
        )
        .await;
        assert_eq!(
            known, unknown,
            "{b:?}: the whole problem document is the same"
        );
        for i in 0..18 {
            srv.try_login(&format!("ghost{i}"), "x").await;
        }
        expect_problem(
            srv.try_login("moe", PASSWORD).await,
            429,
            "too_many_requests",
        )
        .await;
        srv.app
            .clock
            .set(test_clock().now() + Duration::minutes(16));
        srv.login("moe").await;
        srv.stop().await;
    }
}

#[tokio::test]
async fn an_enrolled_second_factor_makes_login_a_two_step_call() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let now = test_clock().now();
        let name = "edu410105";
        let token = srv.login(name).await;
        let res = post(&srv, &token, "/api/v1/auth/totp", json!({})).await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let e: Value = res.json().await.unwrap();
        let secret = e["secret"].as_str().unwrap().to_string();
        assert!(
            e["otpauth_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/")
        );
        let code = totp_code(&secret, name, now).unwrap();
        let res = post(
            &srv,
            &token,
            "/api/v1/auth/totp/confirm",
            json!({ "code": code }),
        )
        .await;
        assert_eq!(res.status().as_u16(), 204, "{b:?}");
        // Step one: the password alone.
        let step = expect_problem(srv.try_login(name, PASSWORD).await, 401, "totp_required").await;
        assert_eq!(step["field"], "totp");
        // Step two: the same call with the code (a new one: each is accepted once).
        let later = now + Duration::seconds(30);
        srv.app.clock.set(later);
        let code = totp_code(&secret, name, later).unwrap();
        let res = srv
            .req(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({ "username": name, "password": PASSWORD, "totp": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{b:?}");

        // The login page asks for the code, then accepts it.
        let c = web_client();
        let res = web_login_with(&srv, &c, name, PASSWORD, "").await;
        assert_eq!(res.status().as_u16(), 401);
        assert!(res.text().await.unwrap().contains("name=\"totp\""), "{b:?}");
        let later = later + Duration::seconds(30);
        srv.app.clock.set(later);
        let code = totp_code(&secret, name, later).unwrap();
        let res = web_login_with(&srv, &c, name, PASSWORD, &code).await;
        assert_eq!(res.status().as_u16(), 303, "{b:?}");
        // Demo accounts without enrolment log in as API.md says.
        srv.login("edu410100").await;
        srv.stop().await;
    }
}

#[tokio::test]
async fn sealed_accounts_cannot_log_in_until_unsealed_from_above() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let t0 = test_clock().now();
        srv.app.clock.set(t0 + Duration::days(100));
        srv.login("secadmin").await;
        srv.app.clock.set(t0 + Duration::days(181));
        assert!(srv.app.seal_inactive_accounts().await.unwrap() > 0);
        expect_problem(
            srv.try_login("4101050001-admin", PASSWORD).await,
            403,
            "account_sealed",
        )
        .await;
        let sec = srv.login("secadmin").await;
        let settings: Value = srv
            .get("/api/v1/security/settings", &sec)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(settings["totp_required"], "authority", "{settings}");
        assert_eq!(settings["session_idle_minutes"], 30);
        let res = srv
            .req(
                Method::POST,
                "/api/v1/accounts/4101050001-admin/unseal",
                Some(&sec),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 204, "{b:?}");
        // The county authority (unsealed by the security administrator) unseals a school's
        // account through its page.
        let res = srv
            .req(
                Method::POST,
                "/api/v1/accounts/edu410105/unseal",
                Some(&sec),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 204);
        let county = srv.web_login("edu410105").await;
        let html = county
            .get(format!("{}/account", srv.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("解封账号"), "{b:?}");
        let res = county
            .post(format!("{}/account/unseal", srv.base))
            .form(&[
                ("_csrf", hidden_csrf(&html).as_str()),
                ("username", "4101050002-admin"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.text().await.unwrap().contains("已解封"), "{b:?}");
        srv.login("4101050002-admin").await;
        let school = srv.login("4101050001-admin").await;
        expect_problem(
            srv.req(
                Method::POST,
                "/api/v1/accounts/4101050001-reviewer/unseal",
                Some(&school),
            )
            .send()
            .await
            .unwrap(),
            404,
            "not_found",
        )
        .await;
        srv.stop().await;
    }
}

#[tokio::test]
async fn separated_administrators_reach_only_their_own_routes() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let auditor = srv.login("auditor").await;
        let res = srv.get("/api/v1/audit?per_page=5", &auditor).await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        assert!(total(&res) >= 1);
        let rows: Value = res.json().await.unwrap();
        assert_eq!(rows[0]["action"], "login", "{rows}");
        for name in ["auditor", "sysadmin", "secadmin"] {
            let t = srv.login(name).await;
            for path in [
                "/api/v1/students?school=4101050001",
                "/api/v1/students/G410105201001010011",
                "/api/v1/schools",
                "/api/v1/transfers",
                "/api/v1/notifications",
            ] {
                expect_problem(srv.get(path, &t).await, 403, "forbidden").await;
            }
        }
        for name in ["moe", "edu410105", "sysadmin"] {
            let t = srv.login(name).await;
            expect_problem(srv.get("/api/v1/audit", &t).await, 403, "forbidden").await;
        }
        // No route alters the audit trail.
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let res = srv
                .req(m.clone(), "/api/v1/audit", Some(&auditor))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 405, "{b:?}: {m}");
        }
        // Pages: the auditor lands on the audit trail and reaches nothing else.
        let web = srv.web_login("auditor").await;
        let res = web.get(format!("{}/", srv.base)).send().await.unwrap();
        assert_eq!(location(&res), "/audit");
        let res = web.get(format!("{}/audit", srv.base)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let html = res.text().await.unwrap();
        assert!(html.contains("操作日志") && html.contains("login"));
        assert!(!html.contains("学生名单"), "{b:?}: no student menu");
        let res = web
            .get(format!("{}/students", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{b:?}");
        let moe = srv.web_login("moe").await;
        let res = moe.get(format!("{}/audit", srv.base)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403);
        srv.stop().await;
    }
}

/// An account the system administrator creates over the API, its initial password changed to
/// `Mine#Pass2026` over the API.
async fn new_account(srv: &Srv, sys: &str, name: &str, role: &str, org: Option<&str>) {
    let res = post(
        srv,
        sys,
        "/api/v1/accounts",
        json!({
            "username": name, "display_name": "新用户", "role": role,
            "org_code": org, "initial_password": "Init#Pass2026",
        }),
    )
    .await;
    assert_eq!(res.status().as_u16(), 201, "create {name}");
    let body: Value = srv
        .try_login(name, "Init#Pass2026")
        .await
        .json()
        .await
        .unwrap();
    let t = body["token"].as_str().unwrap().to_string();
    let res = post(
        srv,
        &t,
        "/api/v1/auth/password",
        json!({"old": "Init#Pass2026", "new": "Mine#Pass2026"}),
    )
    .await;
    assert_eq!(res.status().as_u16(), 204, "change {name}");
}

#[tokio::test]
async fn an_authority_account_must_enrol_a_second_factor_before_anything_else() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let now = test_clock().now();
        let sys = srv.login("sysadmin").await;
        new_account(&srv, &sys, "county-op", "authority_admin", Some("410105")).await;
        new_account(&srv, &sys, "county-op2", "authority_admin", Some("410105")).await;
        new_account(&srv, &sys, "school-op", "school_admin", Some("4101050001")).await;

        // API: signed in, told to enrol, and refused everything but auth/* until then.
        let res = srv.try_login("county-op", "Mine#Pass2026").await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["user"]["must_enrol_totp"], true, "{b:?}: {body}");
        let token = body["token"].as_str().unwrap().to_string();
        let refusal = expect_problem(
            srv.get("/api/v1/schools", &token).await,
            403,
            "totp_enrolment_required",
        )
        .await;
        assert!(
            refusal["detail"].as_str().unwrap().contains("动态口令"),
            "{refusal}"
        );
        let me: Value = srv
            .get("/api/v1/auth/me", &token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["must_enrol_totp"], true, "{b:?}");
        let e: Value = post(&srv, &token, "/api/v1/auth/totp", json!({}))
            .await
            .json()
            .await
            .unwrap();
        let secret = e["secret"].as_str().expect("a secret").to_string();
        let code = totp_code(&secret, "county-op", now).unwrap();
        let res = post(
            &srv,
            &token,
            "/api/v1/auth/totp/confirm",
            json!({ "code": code }),
        )
        .await;
        assert_eq!(res.status().as_u16(), 204, "{b:?}");
        assert_eq!(
            srv.get("/api/v1/schools", &token).await.status(),
            200,
            "{b:?}: enrolled, the same token goes on"
        );
        expect_problem(
            srv.try_login("county-op", "Mine#Pass2026").await,
            401,
            "totp_required",
        )
        .await;
        // School accounts are not required to; the demo accounts are exempt.
        let body: Value = srv
            .try_login("school-op", "Mine#Pass2026")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["user"]["must_enrol_totp"], false, "{b:?}");
        let t = srv.login("edu410105").await;
        assert_eq!(srv.get("/api/v1/schools", &t).await.status(), 200);

        // The security administrator exempts an account; nobody else may.
        let sec = srv.login("secadmin").await;
        let exempt = json!({ "exempt": true });
        let res = post(
            &srv,
            &sec,
            "/api/v1/accounts/county-op/totp-exempt",
            exempt.clone(),
        )
        .await;
        assert_eq!(res.status().as_u16(), 204, "{b:?}");
        expect_problem(
            post(&srv, &sys, "/api/v1/accounts/county-op/totp-exempt", exempt).await,
            403,
            "forbidden",
        )
        .await;
        // Pages: every page sends the user to enrolment, which says why in Chinese.
        let c = web_client();
        let res = web_login_with(&srv, &c, "county-op2", "Mine#Pass2026", "").await;
        assert_eq!(res.status().as_u16(), 303, "{b:?}");
        for path in ["/", "/students", "/account"] {
            let res = c.get(format!("{}{path}", srv.base)).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 303, "{b:?}: {path}");
            assert_eq!(location(&res), "/account/totp", "{path}");
        }
        let html = c
            .get(format!("{}/account/totp", srv.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("须同时使用密码和动态口令") && html.contains("请先完成绑定"),
            "{b:?}: says why"
        );
        let csrf = hidden_csrf(&html);
        let res = c
            .post(format!("{}/account/totp", srv.base))
            .form(&[("_csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let html = res.text().await.unwrap();
        let at = html
            .find("<dt>密钥</dt><dd><code>")
            .expect("the key is shown")
            + 25;
        let secret = html[at..].split('<').next().unwrap().to_string();
        let res = c
            .post(format!("{}/account/totp/confirm", srv.base))
            .form(&[("_csrf", csrf.as_str()), ("code", "000000")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422, "{b:?}: a wrong code");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("验证码不正确") && html.contains(&secret),
            "{b:?}"
        );
        let code = totp_code(&secret, "county-op2", now).unwrap();
        let res = c
            .post(format!("{}/account/totp/confirm", srv.base))
            .form(&[("_csrf", csrf.as_str()), ("code", code.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303, "{b:?}");
        assert_eq!(location(&res), "/account?done=totp");
        let res = c
            .get(format!("{}/students", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{b:?}: free after enrolment");
        srv.stop().await;
    }
}

#[tokio::test]
async fn the_system_administrator_administers_accounts_over_api_and_page() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let sys = srv.login("sysadmin").await;
        let res = srv
            .get(
                "/api/v1/accounts?role=school_admin&region=410105&per_page=2",
                &sys,
            )
            .await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let n = total(&res);
        let rows: Value = res.json().await.unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
        assert!(n >= 2, "{b:?}: {n}");
        assert_eq!(rows[0]["role"], "school_admin");
        let rest: Value = srv
            .get(
                "/api/v1/accounts?role=school_admin&region=410105&per_page=2&page=2",
                &sys,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            rest.as_array().unwrap().len() as i64,
            (n - 2).min(2),
            "{b:?}: the second page"
        );
        expect_problem(
            srv.get("/api/v1/accounts?region=4", &sys).await,
            422,
            "validation_failed",
        )
        .await;
        for other in ["moe", "secadmin", "edu410000"] {
            let t = srv.login(other).await;
            expect_problem(srv.get("/api/v1/accounts", &t).await, 403, "forbidden").await;
        }
        let auditor = srv.login("auditor").await;
        expect_problem(
            srv.get("/api/v1/accounts", &auditor).await,
            403,
            "forbidden",
        )
        .await;

        let target = "4101050002-reviewer";
        let path = |action: &str| format!("/api/v1/accounts/{target}/{action}");
        let res = post(&srv, &sys, &path("disable"), json!({})).await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let a: Value = res.json().await.unwrap();
        assert_eq!(a["disabled"], true);
        expect_problem(
            post(&srv, &sys, &path("disable"), json!({})).await,
            409,
            "conflict",
        )
        .await;
        expect_problem(
            srv.try_login(target, PASSWORD).await,
            403,
            "account_disabled",
        )
        .await;
        expect_problem(
            post(&srv, &sys, "/api/v1/accounts/auditor/disable", json!({})).await,
            403,
            "forbidden",
        )
        .await;
        let res = post(&srv, &sys, &path("enable"), json!({})).await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        srv.login(target).await;

        let res = post(&srv, &sys, &path("password-reset"), json!({})).await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let r: Value = res.json().await.unwrap();
        let pw = r["initial_password"].as_str().unwrap().to_string();
        let body: Value = srv.try_login(target, &pw).await.json().await.unwrap();
        assert_eq!(body["user"]["must_change_password"], true, "{b:?}");

        let res = srv
            .req(Method::PUT, &path("role"), Some(&sys))
            .json(&json!({ "role": "school_admin", "org_code": "4101050002" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let a: Value = res.json().await.unwrap();
        assert_eq!(a["role"], "school_admin");
        let e = expect_problem(
            srv.req(Method::PUT, &path("role"), Some(&sys))
                .json(&json!({ "role": "audit_admin" }))
                .send()
                .await
                .unwrap(),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(e["field"], "role");

        // The audit administrator sees each action.
        for action in [
            "account_disable",
            "account_enable",
            "account_password_reset",
            "account_role_change",
        ] {
            let res = srv
                .get(&format!("/api/v1/audit?action={action}"), &auditor)
                .await;
            assert_eq!(total(&res), 1, "{b:?}: {action}");
            let rows: Value = res.json().await.unwrap();
            assert_eq!(rows[0]["actor_name"], "sysadmin", "{rows}");
        }

        // The page: the list, and the actions as forms.
        let web = srv.web_login("sysadmin").await;
        let html = web
            .get(format!("{}/accounts?school=4101050001", srv.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("账号管理") && html.contains("4101050001-admin"),
            "{b:?}"
        );
        assert!(!html.contains("4401060001-admin"), "{b:?}: filtered");
        let csrf = hidden_csrf(&html);
        let res = web
            .post(format!("{}/accounts/disable", srv.base))
            .form(&[("username", "4101050001-reviewer")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{b:?}: no CSRF token");
        let res = web
            .post(format!("{}/accounts/disable", srv.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("username", "4101050001-reviewer"),
                ("f_school", "4101050001"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let html = res.text().await.unwrap();
        assert!(html.contains("账号 4101050001-reviewer 已停用"), "{b:?}");
        assert!(html.contains("已停用") && html.contains(">启用<"), "{b:?}");
        let res = web
            .post(format!("{}/accounts/password-reset", srv.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("username", "4101050001-reviewer"),
            ])
            .send()
            .await
            .unwrap();
        let html = res.text().await.unwrap();
        assert!(html.contains("新的初始密码"), "{b:?}");
        let res = web
            .post(format!("{}/accounts/role", srv.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("username", "4101050001-reviewer"),
                ("role", "authority_admin"),
                ("org_code", "999999"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422, "{b:?}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("未找到该学籍主管部门") && html.contains("value=\"999999\""),
            "{b:?}: the error beside the field, the input kept"
        );
        let moe = srv.web_login("moe").await;
        let res = moe
            .get(format!("{}/accounts", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{b:?}");
        srv.stop().await;
    }
}
