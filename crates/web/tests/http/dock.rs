//! 对接 over HTTP, on every backend: the national administrator docks 北京; its system signs its
//! requests; forged, stale and unknown ones are refused and logged; an idempotency key replays the
//! first answer; the feed and its acknowledgement; a cross-province transfer whose 北京 steps go
//! through `/api/dock/v1`; people of 北京 refused in the API and the UI.

use reqwest::Method;
use serde_json::{Value, json};
use xueji_app::dock::{self, DockKey};
use xueji_app::testing::backends;

use crate::{Srv, expect_problem, hidden_csrf, total, user_of};

/// Sends a request signed as 北京's system (clock of the hub unless `ts` is given).
#[allow(clippy::too_many_arguments)]
async fn signed(
    s: &Srv,
    key: &DockKey,
    province: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    idem: Option<&str>,
    ts: Option<i64>,
) -> reqwest::Response {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let ts = ts.unwrap_or_else(|| s.app.clock.now().timestamp());
    let headers = dock::sign_request(key, province, method.as_str(), path, ts, idem, &bytes);
    let mut r = s.client.request(method, format!("{}{path}", s.base));
    for (k, v) in headers {
        r = r.header(k, v);
    }
    if body.is_some() {
        r = r.header("content-type", "application/json").body(bytes);
    }
    r.send().await.expect("dock request")
}

#[tokio::test]
async fn a_docked_province_acts_through_the_signed_interface() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let key = dock::new_key();
        let moe = s.login("moe").await;

        // Only the national administrator docks a province.
        let school = s.login("1101080001-admin").await;
        let res = s
            .req(Method::PUT, "/api/v1/dock/provinces/110000", Some(&school))
            .json(&json!({ "public_key": dock::public_b64(&key) }))
            .send()
            .await
            .unwrap();
        expect_problem(res, 403, "forbidden").await;
        let res = s
            .req(Method::PUT, "/api/v1/dock/provinces/110000", Some(&moe))
            .json(&json!({ "public_key": "not a key" }))
            .send()
            .await
            .unwrap();
        expect_problem(res, 422, "validation_failed").await;
        let res = s
            .req(Method::PUT, "/api/v1/dock/provinces/110000", Some(&moe))
            .json(&json!({ "public_key": dock::public_b64(&key) }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["name"], "北京市");

        // Forged, stale and unknown requests are refused with 401.
        let now = s.app.clock.now().timestamp();
        let ev = "/api/dock/v1/events";
        let r = signed(
            &s,
            &dock::new_key(),
            "110000",
            Method::GET,
            ev,
            None,
            None,
            None,
        )
        .await;
        expect_problem(r, 401, "unauthenticated").await;
        let r = signed(
            &s,
            &key,
            "110000",
            Method::GET,
            ev,
            None,
            None,
            Some(now - 600),
        )
        .await;
        expect_problem(r, 401, "unauthenticated").await;
        let r = signed(&s, &key, "310000", Method::GET, ev, None, None, None).await;
        expect_problem(r, 401, "unauthenticated").await;
        let r = s
            .client
            .get(format!("{}{ev}", s.base))
            .send()
            .await
            .unwrap();
        expect_problem(r, 401, "unauthenticated").await;
        // The signature covers the query string.
        let headers = dock::sign_request(
            &key,
            "110000",
            "GET",
            "/api/dock/v1/events?after=0",
            now,
            None,
            b"",
        );
        let mut r = s
            .client
            .get(format!("{}/api/dock/v1/events?after=5", s.base));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        expect_problem(r.send().await.unwrap(), 401, "unauthenticated").await;

        // A transfer 北京 1101080001 → 广东 4401060001, filed and approved on 广东's side by people.
        let gd_admin = user_of(&s.app, "4401060001-admin").await;
        let bj_admin = user_of(&s.app, "1101080001-admin").await;
        let students = s
            .app
            .students(
                &bj_admin,
                &xueji_app::students::StudentFilter {
                    grade: Some("13".into()),
                    ..Default::default()
                },
                xueji_app::paging::Page {
                    page: 1,
                    per_page: 5,
                },
            )
            .await
            .unwrap();
        let st = &students.items[0];
        let class = s
            .app
            .classes(&gd_admin, "4401060001")
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.grade == "13")
            .unwrap()
            .id;
        let t = s
            .app
            .file_transfer(
                &gd_admin,
                &xueji_app::transfers::NewTransfer {
                    from_province: "110000".into(),
                    student_name: st.name.clone(),
                    student_ref: st.student_no.clone(),
                    to_grade: "13".into(),
                    to_class_id: class,
                    reason: "随父母工作调动迁居".into(),
                },
                vec![],
            )
            .await
            .unwrap();
        for who in ["4401060001-reviewer", "edu440106"] {
            let u = user_of(&s.app, who).await;
            s.app.review_transfer(&u, t.id, true, "同意").await.unwrap();
        }

        // 北京's reviewer is refused in the national API, and told who acts.
        let bj_rev = s.login("1101080001-reviewer").await;
        let res = s
            .req(
                Method::POST,
                &format!("/api/v1/transfers/{}/review", t.id),
                Some(&bj_rev),
            )
            .json(&json!({ "decision": "approve", "opinion": "同意" }))
            .send()
            .await
            .unwrap();
        let p = expect_problem(res, 403, "docked_party").await;
        assert!(
            p["detail"].as_str().unwrap().contains("北京市学籍系统"),
            "{p}"
        );
        // … and in the UI: the page names the system, and the step is still waiting.
        let web = s.web_login("1101080001-reviewer").await;
        let page = web
            .get(format!("{}/transfers/{}", s.base, t.id))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("由北京市学籍系统（对接）办理"),
            "the detail says who acts"
        );
        let csrf = hidden_csrf(&page);
        let res = web
            .post(format!("{}/transfers/{}/review", s.base, t.id))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("decision", "approve"),
                ("opinion", "同意"),
            ])
            .send()
            .await
            .unwrap();
        let html = res.text().await.unwrap();
        assert!(html.contains("北京市学籍系统通过对接接口办理"), "{html}");

        // The feed shows the turn has come to 北京.
        let r = signed(
            &s,
            &key,
            "110000",
            Method::GET,
            "/api/dock/v1/events?after=0",
            None,
            None,
            None,
        )
        .await;
        assert_eq!(r.status().as_u16(), 200);
        let feed: Value = r.json().await.unwrap();
        let events = feed["events"].as_array().unwrap();
        assert_eq!(
            events
                .iter()
                .map(|e| e["seq"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(events[2]["data"]["your_turn"], true);
        assert_eq!(events[2]["data"]["waiting"]["step"], "out_school");

        // The decision, sent twice with one key: one change, the same answer.
        let path = format!("/api/dock/v1/transfers/{}/decisions", t.id);
        let body = json!({ "decision": "approve", "step": "out_school", "opinion": "同意", "actor_name": "王老师" });
        let first = signed(
            &s,
            &key,
            "110000",
            Method::POST,
            &path,
            Some(&body),
            Some("bj-1"),
            None,
        )
        .await;
        assert_eq!(first.status().as_u16(), 200);
        assert!(first.headers().get("idempotent-replayed").is_none());
        // The hub signs its answer, bound to the request it answers.
        let hub_key = dock::public_b64(&s.app.dock_hub_key().await.unwrap());
        let h = |n: &str| first.headers()[n].to_str().unwrap().to_string();
        let (rts, rsig) = (h("x-dock-timestamp"), h("x-dock-signature"));
        let first_text = first.text().await.unwrap();
        let sent_body = body.to_string();
        let answered = dock::DockRequest {
            method: "POST",
            path_and_query: &path,
            province: Some("110000"),
            timestamp: None,
            signature: None,
            idem_key: Some("bj-1"),
            body: sent_body.as_bytes(),
        };
        let base = dock::response_base_string(200, &answered, &rts, first_text.as_bytes());
        assert!(
            dock::verify_text(&hub_key, &base, &rsig),
            "the hub's signature"
        );
        let other = dock::response_base_string(409, &answered, &rts, first_text.as_bytes());
        assert!(!dock::verify_text(&hub_key, &other, &rsig));
        let first: Value = serde_json::from_str(&first_text).unwrap();
        assert_eq!(first["status"], "out_authority_review");
        let again = signed(
            &s,
            &key,
            "110000",
            Method::POST,
            &path,
            Some(&body),
            Some("bj-1"),
            None,
        )
        .await;
        assert_eq!(again.status().as_u16(), 200);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again, first, "the first answer, unchanged");
        let now_t = s.app.transfer(&gd_admin, t.id).await.unwrap();
        assert_eq!(
            now_t.version,
            first["version"].as_i64().unwrap(),
            "one change"
        );
        // Without a key a POST is refused; the same decision again under a new key (the
        // province's system lost the first answer) is answered as it stands, changing nothing;
        // a different decision on the decided step is the state machine's conflict.
        let r = signed(
            &s,
            &key,
            "110000",
            Method::POST,
            &path,
            Some(&body),
            None,
            None,
        )
        .await;
        expect_problem(r, 422, "validation_failed").await;
        let r = signed(
            &s,
            &key,
            "110000",
            Method::POST,
            &path,
            Some(&body),
            Some("bj-2"),
            None,
        )
        .await;
        assert_eq!(r.status().as_u16(), 200, "the same decision again");
        let again: Value = r.json().await.unwrap();
        assert_eq!(again["version"], first["version"], "nothing changed");
        let refusal = json!({ "decision": "reject", "step": "out_school", "opinion": "不同意", "actor_name": "王老师" });
        let r = signed(
            &s,
            &key,
            "110000",
            Method::POST,
            &path,
            Some(&refusal),
            Some("bj-2b"),
            None,
        )
        .await;
        expect_problem(r, 409, "conflict").await;
        let body =
            json!({ "decision": "approve", "step": "out_authority", "actor_name": "赵科长" });
        let r = signed(
            &s,
            &key,
            "110000",
            Method::POST,
            &path,
            Some(&body),
            Some("bj-3"),
            None,
        )
        .await;
        assert_eq!(r.status().as_u16(), 200);
        let done: Value = r.json().await.unwrap();
        assert_eq!(done["status"], "approved");
        assert_eq!(done["steps"][3]["actor_name"], "赵科长（北京市学籍系统）");
        assert_eq!(done["steps"][3]["docked_system"], "北京市学籍系统（对接）");

        // Acknowledge, and the default read starts after it.
        let r = signed(
            &s,
            &key,
            "110000",
            Method::POST,
            "/api/dock/v1/events/ack",
            Some(&json!({ "through": 3 })),
            Some("ack-3"),
            None,
        )
        .await;
        assert_eq!(r.status().as_u16(), 200);
        let r = signed(&s, &key, "110000", Method::GET, ev, None, None, None).await;
        let feed: Value = r.json().await.unwrap();
        assert_eq!(
            feed["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(feed["acked_through"], 3);

        // The national administrator sees the provinces' backlog and the message log.
        let res = s.get("/api/v1/dock/provinces", &moe).await;
        let list: Value = res.json().await.unwrap();
        assert_eq!(list[0]["backlog"], 2);
        assert!(list[0]["last_contact_at"].is_string());
        let res = s.get("/api/v1/dock/messages?per_page=100", &moe).await;
        assert_eq!(res.status().as_u16(), 200);
        let n = total(&res);
        let log: Value = res.json().await.unwrap();
        assert!(n >= 12, "{n}");
        let outcomes: Vec<&str> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["outcome"].as_str().unwrap())
            .collect();
        assert!(outcomes.contains(&"replayed"));
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| o.starts_with("refused:"))
                .count(),
            6,
            "{outcomes:?}"
        );
        let res = s.get("/api/v1/dock/messages", &school).await;
        expect_problem(res, 403, "forbidden").await;
        let web = s.web_login("moe").await;
        let page = web
            .get(format!("{}/dock", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("对接管理")
                && page.contains("北京市（110000）")
                && page.contains("replayed")
        );

        // The hub's key is public and the OpenAPI document lists the interface.
        let r = s
            .client
            .get(format!("{}/api/dock/v1/hub-key", s.base))
            .send()
            .await
            .unwrap();
        let hub: Value = r.json().await.unwrap();
        assert_eq!(hub["public_key"].as_str().unwrap().len(), 44);
        let doc: Value = s
            .client
            .get(format!("{}/api/v1/openapi.json", s.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for p in [
            "/api/dock/v1/events",
            "/api/dock/v1/events/ack",
            "/api/dock/v1/transfers/{id}/decisions",
            "/api/dock/v1/transfers/{id}/file",
        ] {
            assert!(doc["paths"][p].is_object(), "{p} in the OpenAPI document");
        }
        s.stop().await;
    }
}
