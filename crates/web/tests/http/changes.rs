//! 学籍异动 and 关键数据变更 over HTTP: the request flow end to end, its problem codes, the direct
//! edit of non-key fields, and the pages (file, work list, detail with its action forms).

use reqwest::Method;
use serde_json::{Value, json};
use xueji_app::testing::backends;

use crate::{Srv, expect_problem, hidden_csrf, ok, send, total};

const SCHOOL: &str = "4101050003";

/// The student numbers of a grade of 4101050003, in list order.
async fn students(s: &Srv, tok: &str, grade: &str) -> Vec<String> {
    let list: Value = s
        .get(
            &format!("/api/v1/students?school={SCHOOL}&grade={grade}"),
            tok,
        )
        .await
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|st| st["student_no"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_change_request_end_to_end_and_its_refusals() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let admin = s.login("4101050003-admin").await;
        let reviewer = s.login("4101050003-reviewer").await;
        let authority = s.login("edu410105").await;
        let stranger = s.login("edu440106").await;
        let g21 = students(&s, &admin, "21").await;
        let no = &g21[0];

        // 休学 filed by the school's administrator: 201, pending at the school, student locked.
        let path = format!("/api/v1/students/{no}/changes");
        let body = json!({ "kind": "suspension", "reason": "因病休养",
                           "from_date": "2026-11-02", "until_date": "2027-06-30" });
        let d = ok(
            send(&s, Method::POST, &admin, &path, body.clone()).await,
            201,
        )
        .await;
        assert_eq!(d["status"], "pending_school");
        assert_eq!(d["kind_label"], "休学");
        assert_eq!(d["steps"][0]["state"], "waiting");
        assert_eq!(d["steps"][1]["party"], "410105");
        let id = d["id"].as_i64().unwrap();
        let one: Value = s
            .get(&format!("/api/v1/students/{no}"), &admin)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(one["open_business"], "status_change");
        // A second request, or a transfer, meets the lock.
        expect_problem(
            send(&s, Method::POST, &admin, &path, body.clone()).await,
            409,
            "transfer_in_progress",
        )
        .await;

        // Work lists with X-Total-Count.
        let res = s.get("/api/v1/changes?todo=true", &reviewer).await;
        assert_eq!(total(&res), 1);
        let res = s.get("/api/v1/changes?todo=true", &authority).await;
        assert_eq!(total(&res), 0);
        let res = s
            .get(
                "/api/v1/changes?kind=suspension&status=pending_school",
                &authority,
            )
            .await;
        assert_eq!(total(&res), 1);
        let res = s.get("/api/v1/changes", &stranger).await;
        assert_eq!(total(&res), 0);
        expect_problem(
            s.get("/api/v1/changes?status=bogus", &admin).await,
            422,
            "validation_failed",
        )
        .await;

        // Refusals by role, turn and jurisdiction.
        let review = format!("/api/v1/changes/{id}/review");
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &review,
                json!({ "decision": "approve" }),
            )
            .await,
            403,
            "forbidden",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &authority,
                &review,
                json!({ "decision": "approve" }),
            )
            .await,
            403,
            "not_your_turn",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &stranger,
                &review,
                json!({ "decision": "approve" }),
            )
            .await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            s.get(&format!("/api/v1/changes/{id}"), &stranger).await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &reviewer,
                &review,
                json!({ "decision": "reject" }),
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
                &reviewer,
                &review,
                json!({ "decision": "maybe" }),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;

        // School, then authority: applied.
        let d = ok(
            send(
                &s,
                Method::POST,
                &reviewer,
                &review,
                json!({ "decision": "approve", "opinion": "属实" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(d["status"], "pending_authority");
        assert_eq!(d["steps"][0]["actor"], "4101050003-reviewer");
        let d = ok(
            send(
                &s,
                Method::POST,
                &authority,
                &review,
                json!({ "decision": "approve" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(d["status"], "applied");
        expect_problem(
            send(
                &s,
                Method::POST,
                &authority,
                &review,
                json!({ "decision": "approve" }),
            )
            .await,
            409,
            "conflict",
        )
        .await;
        let one: Value = s
            .get(&format!("/api/v1/students/{no}"), &admin)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(one["status"], "suspended");
        assert_eq!(one["open_business"], Value::Null);
        let res = s
            .get(&format!("/api/v1/changes?student={no}"), &admin)
            .await;
        assert_eq!(total(&res), 1);

        // 退学 of an 初中 student: policy_violation; a kind word unknown: validation_failed.
        let other = format!("/api/v1/students/{}/changes", g21[1]);
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &other,
                json!({ "kind": "withdrawal", "reason": "外出务工" }),
            )
            .await,
            422,
            "policy_violation",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &other,
                json!({ "kind": "vanish", "reason": "x" }),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &other,
                json!({ "kind": "death", "reason": " " }),
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
                &reviewer,
                &other,
                json!({ "kind": "death", "reason": "x" }),
            )
            .await,
            403,
            "forbidden",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &stranger,
                &other,
                json!({ "kind": "death", "reason": "x" }),
            )
            .await,
            404,
            "not_found",
        )
        .await;

        // 辍学 answers with the report duty; withdrawal by the school ends it and unlocks.
        let d = ok(
            send(
                &s,
                Method::POST,
                &admin,
                &other,
                json!({ "kind": "dropout", "reason": "长期未到校" }),
            )
            .await,
            201,
        )
        .await;
        assert!(d["notice"].as_str().unwrap().contains("控辍保学"));
        let wid = d["id"].as_i64().unwrap();
        let withdraw = format!("/api/v1/changes/{wid}/withdraw");
        expect_problem(
            send(&s, Method::POST, &admin, &withdraw, json!({ "reason": "" })).await,
            422,
            "reason_required",
        )
        .await;
        let d = ok(
            send(
                &s,
                Method::POST,
                &admin,
                &withdraw,
                json!({ "reason": "学生已返校" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(d["status"], "withdrawn");
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &withdraw,
                json!({ "reason": "again" }),
            )
            .await,
            409,
            "conflict",
        )
        .await;

        s.stop().await;
    }
}

#[tokio::test]
async fn key_changes_and_the_direct_edit_over_http() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let admin = s.login("4101050003-admin").await;
        let g22 = students(&s, &admin, "22").await;
        let (a, b) = (&g22[0], &g22[1]);
        let b_detail: Value = s
            .get(&format!("/api/v1/students/{b}"), &admin)
            .await
            .json()
            .await
            .unwrap();
        let path = format!("/api/v1/students/{a}/changes");
        let pdf = json!([{ "filename": "身份证.pdf", "content_base64": "JVBERi0xLjQK" }]);

        // Evidence is required; another student's number is a duplicate; a bad file is refused.
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &path,
                json!({ "kind": "key_change", "reason": "更正", "new_name": "张更正" }),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &path,
                json!({ "kind": "key_change", "reason": "更正",
                "new_id_number": b_detail["id_number"], "evidence": pdf }),
            )
            .await,
            409,
            "duplicate_person",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &path,
                json!({ "kind": "key_change", "reason": "更正", "new_name": "张更正",
                "evidence": [{ "filename": "x.txt", "content_base64": "aGVsbG8=" }] }),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        expect_problem(
            send(
                &s,
                Method::POST,
                &admin,
                &path,
                json!({ "kind": "key_change", "reason": "更正",
                "new_id_number": "410105201001011234", "evidence": pdf }),
            )
            .await,
            422,
            "invalid_id_number",
        )
        .await;
        let d = ok(
            send(
                &s,
                Method::POST,
                &admin,
                &path,
                json!({ "kind": "key_change", "reason": "姓名登记错误",
                "new_name": "张更正", "evidence": pdf }),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(d["evidence"].as_array().unwrap().len(), 1);
        let id = d["id"].as_i64().unwrap();
        let ev = d["evidence"][0]["id"].as_i64().unwrap();
        let res = s
            .get(&format!("/api/v1/changes/{id}/evidence/{ev}"), &admin)
            .await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF-1.4\n");
        // A scan of 1.8 MB (2.4 MB as base64) is accepted: the filing route allows more than
        // the default JSON limit.
        let big = format!("JVBERi0xLjQK{}", "AAAA".repeat(600_000));
        let d = ok(
            send(
                &s,
                Method::POST,
                &admin,
                &format!("/api/v1/students/{}/changes", g22[2]),
                json!({ "kind": "key_change", "reason": "出生日期登记错误", "new_name": "王更正",
                        "evidence": [{ "filename": "出生医学证明.pdf", "content_base64": big }] }),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(d["evidence"][0]["size"], 9 + 1_800_000);

        // Non-key fields edit directly; key fields are refused there.
        let patch = format!("/api/v1/students/{b}");
        let d = ok(
            send(
                &s,
                Method::PATCH,
                &admin,
                &patch,
                json!({ "ethnicity": "02" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(d["ethnicity"], "02");
        let v = expect_problem(
            send(
                &s,
                Method::PATCH,
                &admin,
                &patch,
                json!({ "birth_date": "2013-01-01" }),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(v["field"], "birth_date");
        expect_problem(
            send(
                &s,
                Method::PATCH,
                &admin,
                &patch,
                json!({ "ethnicity": "01", "version": 0 }),
            )
            .await,
            409,
            "conflict",
        )
        .await;
        let authority = s.login("edu410105").await;
        expect_problem(
            send(
                &s,
                Method::PATCH,
                &authority,
                &patch,
                json!({ "ethnicity": "01" }),
            )
            .await,
            403,
            "forbidden",
        )
        .await;
        s.stop().await;
    }
}

#[tokio::test]
async fn the_pages_file_list_and_decide_a_change() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let tok = s.login("4101050003-admin").await;
        let no = students(&s, &tok, "23").await[0].clone();

        // The administrator files from the student's page.
        let admin = s.web_login("4101050003-admin").await;
        let page = admin
            .get(format!("{}/students/{no}/changes/new", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("学籍异动申请") && html.contains("休学"));
        let csrf = hidden_csrf(&html);
        // Without the CSRF token: refused.
        let res = admin
            .post(format!("{}/students/{no}/changes/new", s.base))
            .form(&[("kind", "death"), ("reason", "病故")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403);
        // A refused form keeps what was typed and says what is wrong.
        let res = admin
            .post(format!("{}/students/{no}/changes/new", s.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("kind", "withdrawal"),
                ("reason", "外出务工"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let html = res.text().await.unwrap();
        assert!(html.contains("仅适用于高中") && html.contains("外出务工"));
        let res = admin
            .post(format!("{}/students/{no}/changes/new", s.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("kind", "death"),
                ("reason", "病故"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let location = res.headers()["location"].to_str().unwrap().to_string();
        assert!(location.ends_with("?done=filed"), "{location}");
        let location = location.trim_end_matches("?done=filed").to_string();
        assert!(location.starts_with("/changes/"), "{location}");
        // The student's page names the lock and links to the change history.
        let student_page = admin
            .get(format!("{}/students/{no}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(student_page.contains("学籍异动办理中"));
        assert!(student_page.contains(&format!("/changes?student={no}")));

        // The reviewer finds it on the 学籍异动 work list and approves on the detail page.
        let reviewer = s.web_login("4101050003-reviewer").await;
        let home = reviewer
            .get(format!("{}/", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            home.contains("<a href=\"/changes?view=todo\">待审核 <strong>1</strong> 件</a>"),
            "{home}"
        );
        let list = reviewer
            .get(format!("{}/changes", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            list.contains("学籍异动") && list.contains(&location),
            "{list}"
        );
        let detail = reviewer
            .get(format!("{}{location}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(detail.contains("同意") && detail.contains("不同意"));
        let csrf = hidden_csrf(&detail);
        let res = reviewer
            .post(format!("{}{location}/review", s.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("decision", "reject"),
                ("opinion", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let res = reviewer
            .post(format!("{}{location}/review", s.base))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("decision", "approve"),
                ("opinion", "属实"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
        let after = reviewer
            .get(format!("{}{location}", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(after.contains("待学籍主管部门审批"), "{after}");
        s.stop().await;
    }
}
