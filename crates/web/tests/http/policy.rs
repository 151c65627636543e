//! Provincial policy, oversight and the parents' query over HTTP, on every backend.

use reqwest::Method;
use serde_json::{Value, json};
use xueji_app::testing::backends;

use crate::{Srv, expect_problem};

async fn send(
    s: &Srv,
    method: Method,
    tok: Option<&str>,
    path: &str,
    body: Value,
) -> reqwest::Response {
    s.req(method, path, tok).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn policy_rules_refuse_applications_and_everyone_reads_them() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let gd = s.login("edu440000").await;
        let freeze = json!({ "policy": { "freezes": [
            { "start": "11-01", "end": "11-05", "direction": "in", "name": "秋季停办" }
        ] }, "note": "秋季停办" });
        // Only the province's own authority writes it; a wrong field is refused with a code.
        let hn = s.login("edu410000").await;
        expect_problem(
            send(
                &s,
                Method::PUT,
                Some(&hn),
                "/api/v1/policies/440000",
                freeze.clone(),
            )
            .await,
            403,
            "forbidden",
        )
        .await;
        let bad = json!({ "policy": { "deadline_days": 0 } });
        expect_problem(
            send(&s, Method::PUT, Some(&gd), "/api/v1/policies/440000", bad).await,
            422,
            "validation_failed",
        )
        .await;
        let unknown = json!({ "policy": { "no_such_rule": true } });
        expect_problem(
            send(
                &s,
                Method::PUT,
                Some(&gd),
                "/api/v1/policies/440000",
                unknown,
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        let res = send(
            &s,
            Method::PUT,
            Some(&gd),
            "/api/v1/policies/440000",
            freeze,
        )
        .await;
        assert_eq!(res.status().as_u16(), 200);
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["version"], 1);
        // Readable by a school of another province.
        let school = s.login("4101050001-admin").await;
        let p: Value = s
            .get("/api/v1/policies/440000", &school)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(p["policy"]["freezes"][0]["name"], "秋季停办");
        // The freeze refuses an application into 广东 on 2026-11-02, naming the rule.
        let list: Value = s
            .get("/api/v1/students?school=4101050001&grade=13", &school)
            .await
            .json()
            .await
            .unwrap();
        let admin = s.login("4401060001-admin").await;
        let classes: Value = s
            .get("/api/v1/schools/4401060001/classes", &admin)
            .await
            .json()
            .await
            .unwrap();
        let class = classes
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["grade"] == "13")
            .unwrap()["id"]
            .clone();
        let app = json!({ "from_province": "410000", "student_name": list[0]["name"], "student_ref": list[0]["student_no"],
                          "to_grade": "13", "to_class_id": class, "reason": "随迁" });
        let v = expect_problem(
            send(
                &s,
                Method::POST,
                Some(&admin),
                "/api/v1/transfers",
                app.clone(),
            )
            .await,
            422,
            "policy_violation",
        )
        .await;
        assert!(v["detail"].as_str().unwrap().contains("秋季停办"), "{v}");
        // Lift it; the application goes through and the parent can follow it with the code.
        let res = send(
            &s,
            Method::PUT,
            Some(&gd),
            "/api/v1/policies/440000",
            json!({ "policy": {}, "note": "恢复" }),
        )
        .await;
        assert_eq!(res.status().as_u16(), 200);
        let t: Value = send(&s, Method::POST, Some(&admin), "/api/v1/transfers", app)
            .await
            .json()
            .await
            .unwrap();
        let code = t["query_code"]
            .as_str()
            .expect("the receiving school sees the query code")
            .to_string();
        let res = send(
            &s,
            Method::POST,
            None,
            "/api/v1/public/transfer-progress",
            json!({ "code": code, "student_name": t["student_name"] }),
        )
        .await;
        assert_eq!(res.status().as_u16(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["current_step"], "待转入学校审核");
        assert_eq!(v.as_object().unwrap().len(), 6);
        let res = send(
            &s,
            Method::POST,
            None,
            "/api/v1/public/transfer-progress",
            json!({ "code": code, "student_name": "别人" }),
        )
        .await;
        expect_problem(res, 404, "not_found").await;
        // The dashboard: one step waiting at a 广东 school; schools have no dashboard.
        let d: Value = s
            .get("/api/v1/oversight/dashboard", &gd)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(d["total"]["waiting"], 1);
        expect_problem(
            s.get("/api/v1/oversight/dashboard", &admin).await,
            403,
            "forbidden",
        )
        .await;
        let st = s.get("/api/v1/statistics", &gd).await;
        assert_eq!(st.status().as_u16(), 200);
        s.stop().await;
    }
}

/// 处分 over HTTP: recorded by the holding school (201), read by its authority, refused to others
/// with stable codes, revoked once (then `conflict`).
#[tokio::test]
async fn sanctions_are_recorded_read_and_revoked_with_stable_codes() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let admin = s.login("4101050001-admin").await;
        let list: Value = s
            .get("/api/v1/students?school=4101050001&per_page=1", &admin)
            .await
            .json()
            .await
            .unwrap();
        let no = list[0]["student_no"].as_str().unwrap().to_string();
        let path = format!("/api/v1/students/{no}/sanctions");
        let body = json!({ "kind": "warning", "reason": "多次旷课", "decided_on": "2026-10-08" });
        let reviewer = s.login("4101050001-reviewer").await;
        expect_problem(
            send(&s, Method::POST, Some(&reviewer), &path, body.clone()).await,
            403,
            "forbidden",
        )
        .await;
        let other = s.login("4401060001-admin").await;
        expect_problem(
            send(&s, Method::POST, Some(&other), &path, body.clone()).await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                Some(&admin),
                &path,
                json!({ "kind": "warning", "reason": "", "decided_on": "2026-10-08" }),
            )
            .await,
            422,
            "reason_required",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                Some(&admin),
                &path,
                json!({ "kind": "warning", "reason": "x", "decided_on": "08/10/2026" }),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        let res = send(&s, Method::POST, Some(&admin), &path, body).await;
        assert_eq!(res.status().as_u16(), 201);
        let rec: Value = res.json().await.unwrap();
        assert_eq!(rec["kind_name"], "警告");
        assert_eq!(rec["ends_on"], "2027-04-08");
        assert_eq!(rec["in_force"], true);
        let county = s.login("edu410105").await;
        let seen: Value = s.get(&path, &county).await.json().await.unwrap();
        assert_eq!(seen.as_array().unwrap().len(), 1);
        let revoke = format!("/api/v1/sanctions/{}/revoke", rec["id"]);
        let res = send(
            &s,
            Method::POST,
            Some(&admin),
            &revoke,
            json!({ "reason": "已改正" }),
        )
        .await;
        assert_eq!(res.status().as_u16(), 200);
        let done: Value = res.json().await.unwrap();
        assert_eq!(done["in_force"], false);
        assert_eq!(done["revoke_reason"], "已改正");
        expect_problem(
            send(
                &s,
                Method::POST,
                Some(&admin),
                &revoke,
                json!({ "reason": "再次" }),
            )
            .await,
            409,
            "conflict",
        )
        .await;
        s.stop().await;
    }
}

/// The 处分记录 page: the holding school's administrator records one through the form (a refused
/// form keeps what was typed), the page lists it; a cross-site post without the token is refused.
#[tokio::test]
async fn sanctions_page_records_through_the_form() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let token = s.login("4101050001-admin").await;
        let list: Value = s
            .get("/api/v1/students?school=4101050001&per_page=1", &token)
            .await
            .json()
            .await
            .unwrap();
        let no = list[0]["student_no"].as_str().unwrap().to_string();
        let web = s.web_login("4101050001-admin").await;
        let url = format!("{}/students/{no}/sanctions", s.base);
        let page = web.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("无处分记录") && page.contains("记录处分"));
        let csrf = crate::hidden_csrf(&page);
        let res = web
            .post(&url)
            .form(&[
                ("kind", "demerit"),
                ("reason", "<b>打架</b>"),
                ("decided_on", "2026-10-08"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "no token, no change");
        let res = web
            .post(&url)
            .form(&[
                ("_csrf", csrf.as_str()),
                ("kind", "demerit"),
                ("reason", "<b>打架</b>"),
                ("decided_on", "2026/10/08"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let html = res.text().await.unwrap();
        assert!(html.contains("日期格式应为YYYY-MM-DD"));
        assert!(
            html.contains("打架") && !html.contains("<b>打架"),
            "typed reason kept, escaped"
        );
        let res = web
            .post(&url)
            .form(&[
                ("_csrf", csrf.as_str()),
                ("kind", "demerit"),
                ("reason", "<b>打架</b>"),
                ("decided_on", "2026-10-08"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let page = web
            .get(format!("{url}?done=record"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("处分已记录") && page.contains("记过") && page.contains("处分期内"));
        assert!(page.contains("2027-10-08") && page.contains("解除处分"));
        // The county authority sees it, without the forms.
        let county = s.web_login("edu410105").await;
        let page = county.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("记过") && !page.contains("记录处分</button>"));
        s.stop().await;
    }
}
