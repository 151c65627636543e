//! 跨省转学 / 省内转学 over HTTP, as API.md fixes it: every transition and every refusal, on every
//! backend.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use xueji_app::testing::backends;

use crate::{Srv, expect_problem, ok, post, total};

/// A 河南 4101050001 student of grade 13 (student_no, name).
async fn a_student(s: &Srv, nth: usize) -> (String, String) {
    let tok = s.login("4101050001-admin").await;
    let list: Value = s
        .get("/api/v1/students?school=4101050001&grade=13", &tok)
        .await
        .json()
        .await
        .unwrap();
    let st = &list[nth];
    (
        st["student_no"].as_str().unwrap().into(),
        st["name"].as_str().unwrap().into(),
    )
}

async fn class_id(s: &Srv, tok: &str, school: &str, grade: &str) -> i64 {
    let list: Value = s
        .get(&format!("/api/v1/schools/{school}/classes"), tok)
        .await
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["grade"] == grade)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

fn application(no: &str, name: &str, class: i64) -> Value {
    json!({ "from_province": "410000", "student_name": name, "student_ref": no,
            "to_grade": "13", "to_class_id": class, "reason": "随父母工作调动" })
}

#[tokio::test]
async fn a_cross_province_transfer_from_application_to_completion() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let (no, name) = a_student(&s, 0).await;
        let admin = s.login("4401060001-admin").await;
        let class = class_id(&s, &admin, "4401060001", "13").await;
        let t = ok(
            post(
                &s,
                &admin,
                "/api/v1/transfers",
                application(&no, &name, class),
            )
            .await,
            201,
        )
        .await;
        for k in [
            "id",
            "kind",
            "status",
            "student_no",
            "student_name",
            "from_school",
            "to_school",
            "to_grade",
            "to_class_id",
            "reason",
            "created_at",
            "steps",
        ] {
            assert!(!t[k].is_null(), "detail field {k}: {t}");
        }
        assert_eq!(t["kind"], "cross_province");
        assert_eq!(t["status"], "in_school_review");
        assert_eq!(
            (t["from_school"].as_str(), t["to_school"].as_str()),
            (Some("4101050001"), Some("4401060001"))
        );
        let steps = t["steps"].as_array().unwrap();
        assert_eq!(
            steps.len(),
            4,
            "every step of the chain, those not reached included"
        );
        for st in steps {
            for k in [
                "step",
                "party",
                "decision",
                "opinion",
                "actor",
                "decided_at",
                "due_date",
            ] {
                assert!(st.get(k).is_some(), "step field {k}: {st}");
            }
        }
        assert_eq!(steps[0]["due_date"], "2026-11-13");
        let id = t["id"].as_i64().unwrap();

        // The receiving school's work list has it; the sending school's has not yet.
        let rev = s.login("4401060001-reviewer").await;
        let todo = s.get("/api/v1/transfers?todo=true", &rev).await;
        assert_eq!(total(&todo), 1);
        let from_rev = s.login("4101050001-reviewer").await;
        assert_eq!(
            total(&s.get("/api/v1/transfers?todo=true", &from_rev).await),
            0
        );

        let review = |who: &'static str, expect: &'static str| {
            let s = &s;
            async move {
                let tok = s.login(who).await;
                let t = ok(
                    post(
                        s,
                        &tok,
                        &format!("/api/v1/transfers/{id}/review"),
                        json!({ "decision": "approve", "opinion": "同意" }),
                    )
                    .await,
                    200,
                )
                .await;
                assert_eq!(t["status"], expect, "after {who}");
            }
        };
        review("4401060001-reviewer", "in_authority_review").await;
        review("edu440106", "out_school_review").await;
        review("4101050001-reviewer", "out_authority_review").await;
        review("edu410105", "approved").await;

        let t = ok(
            post(
                &s,
                &admin,
                &format!("/api/v1/transfers/{id}/pull-file"),
                json!({}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(t["status"], "file_pulled");
        // From then on the student is enrolled at the receiving school in the target class.
        let st: Value = s
            .get(&format!("/api/v1/students/{no}"), &admin)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(st["school"], "4401060001");
        assert_eq!(st["class_id"], class);
        let roll: Value = s
            .get(
                "/api/v1/students?school=4401060001&grade=13&per_page=500",
                &admin,
            )
            .await
            .json()
            .await
            .unwrap();
        assert!(
            roll.as_array()
                .unwrap()
                .iter()
                .any(|x| x["student_no"] == no.as_str())
        );
        let sender = s.login("4101050001-admin").await;
        let old_roll: Value = s
            .get("/api/v1/students?school=4101050001&per_page=500", &sender)
            .await
            .json()
            .await
            .unwrap();
        assert!(
            old_roll
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["student_no"] != no.as_str())
        );
        // The sending school is notified of the pull.
        let notes: Value = s
            .get("/api/v1/notifications", &sender)
            .await
            .json()
            .await
            .unwrap();
        assert!(
            notes
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["kind"] == "file_pulled" && n["transfer_id"] == id)
        );
        for k in ["id", "kind", "transfer_id", "text", "created_at", "read"] {
            assert!(notes[0].get(k).is_some(), "notification field {k}");
        }

        let t = ok(
            post(
                &s,
                &sender,
                &format!("/api/v1/transfers/{id}/paper-file"),
                json!({ "action": "sent", "note": "EMS 1234" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(t["status"], "paper_sent");
        expect_problem(
            post(
                &s,
                &sender,
                &format!("/api/v1/transfers/{id}/paper-file"),
                json!({ "action": "received", "note": "" }),
            )
            .await,
            403,
            "forbidden",
        )
        .await;
        let t = ok(
            post(
                &s,
                &admin,
                &format!("/api/v1/transfers/{id}/paper-file"),
                json!({ "action": "received", "note": "已收到" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(t["status"], "completed");
        // The query: by status and kind, and the export.
        assert_eq!(
            total(
                &s.get(
                    "/api/v1/transfers?status=completed&kind=cross_province",
                    &admin
                )
                .await
            ),
            1
        );
        let x = s
            .get("/api/v1/transfers.xlsx?status=completed", &admin)
            .await;
        assert_eq!(x.status().as_u16(), 200);
        assert_eq!(&x.bytes().await.unwrap()[0..2], b"PK");
        s.stop().await;
    }
}

#[tokio::test]
async fn every_refusal_has_its_code() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let (no, name) = a_student(&s, 0).await;
        let admin = s.login("4401060001-admin").await;
        let class = class_id(&s, &admin, "4401060001", "13").await;
        let path = "/api/v1/transfers";
        let mut bad = application(&no, &name, class);
        bad["from_province"] = json!("440000");
        expect_problem(post(&s, &admin, path, bad).await, 404, "not_found").await;
        let mut bad = application(&no, &name, class);
        bad["student_name"] = json!("王冒名");
        expect_problem(post(&s, &admin, path, bad).await, 422, "name_mismatch").await;
        let mut wrong = no[1..].to_string();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '3' { '4' } else { '3' });
        let mut bad = application(&no, &name, class);
        bad["student_ref"] = json!(wrong);
        expect_problem(post(&s, &admin, path, bad).await, 422, "invalid_id_number").await;
        let mut bad = application(&no, &name, class);
        bad["reason"] = json!("");
        expect_problem(post(&s, &admin, path, bad).await, 422, "reason_required").await;
        let mut bad = application(&no, &name, class);
        bad["to_class_id"] = json!("x");
        expect_problem(post(&s, &admin, path, bad).await, 422, "validation_failed").await;
        let rev = s.login("4401060001-reviewer").await;
        expect_problem(
            post(&s, &rev, path, application(&no, &name, class)).await,
            403,
            "forbidden",
        )
        .await;

        let t = ok(
            post(&s, &admin, path, application(&no, &name, class)).await,
            201,
        )
        .await;
        let id = t["id"].as_i64().unwrap();
        // One open business per student.
        let other = s.login("4403040001-admin").await;
        let class2 = class_id(&s, &other, "4403040001", "13").await;
        expect_problem(
            post(&s, &other, path, application(&no, &name, class2)).await,
            409,
            "transfer_in_progress",
        )
        .await;
        // Reviews: only the current step's party; the filer never; reject needs an opinion.
        let review = format!("/api/v1/transfers/{id}/review");
        expect_problem(
            post(&s, &admin, &review, json!({ "decision": "approve" })).await,
            403,
            "forbidden",
        )
        .await;
        let from_rev = s.login("4101050001-reviewer").await;
        expect_problem(
            post(&s, &from_rev, &review, json!({ "decision": "approve" })).await,
            403,
            "not_your_turn",
        )
        .await;
        expect_problem(
            post(
                &s,
                &rev,
                &review,
                json!({ "decision": "reject", "opinion": " " }),
            )
            .await,
            422,
            "reason_required",
        )
        .await;
        expect_problem(
            post(&s, &rev, &review, json!({ "decision": "maybe" })).await,
            422,
            "validation_failed",
        )
        .await;
        // Outsiders: 404, never a hint.
        let stranger = s.login("1101080001-reviewer").await;
        expect_problem(
            s.get(&format!("/api/v1/transfers/{id}"), &stranger).await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            post(&s, &stranger, &review, json!({ "decision": "approve" })).await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            post(
                &s,
                &admin,
                &format!("/api/v1/transfers/{id}/pull-file"),
                json!({}),
            )
            .await,
            409,
            "conflict",
        )
        .await;
        // Withdrawal with a reason ends it and frees the student.
        expect_problem(
            post(
                &s,
                &admin,
                &format!("/api/v1/transfers/{id}/withdraw"),
                json!({ "reason": "" }),
            )
            .await,
            422,
            "reason_required",
        )
        .await;
        let t = ok(
            post(
                &s,
                &admin,
                &format!("/api/v1/transfers/{id}/withdraw"),
                json!({ "reason": "家长改变主意" }),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(t["status"], "withdrawn");
        expect_problem(
            post(&s, &rev, &review, json!({ "decision": "approve" })).await,
            409,
            "conflict",
        )
        .await;
        ok(
            post(&s, &other, path, application(&no, &name, class2)).await,
            201,
        )
        .await;
        s.stop().await;
    }
}

#[tokio::test]
async fn two_simultaneous_decisions_one_wins_the_other_gets_conflict() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let (no, name) = a_student(&s, 1).await;
        let admin = s.login("4401060001-admin").await;
        let class = class_id(&s, &admin, "4401060001", "13").await;
        let t = ok(
            post(
                &s,
                &admin,
                "/api/v1/transfers",
                application(&no, &name, class),
            )
            .await,
            201,
        )
        .await;
        let review = format!("/api/v1/transfers/{}/review", t["id"]);
        let (a, b) = (
            s.login("4401060001-reviewer").await,
            s.login("4401060001-reviewer").await,
        );
        let (r1, r2) = tokio::join!(
            post(
                &s,
                &a,
                &review,
                json!({ "decision": "approve", "opinion": "同意" })
            ),
            post(
                &s,
                &b,
                &review,
                json!({ "decision": "reject", "opinion": "不同意" })
            )
        );
        let mut codes = [r1.status().as_u16(), r2.status().as_u16()];
        codes.sort();
        assert_eq!(codes, [200, 409]);
        let loser = if r1.status().as_u16() == 409 { r1 } else { r2 };
        expect_problem(loser, 409, "conflict").await;
        s.stop().await;
    }
}

#[tokio::test]
async fn a_step_begun_before_national_day_2024_is_due_after_it() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        // 2024-09-27 (Friday): 09-29 is a make-up working day, 10-01..10-07 are holidays.
        s.app
            .clock
            .set(Utc.with_ymd_and_hms(2024, 9, 27, 2, 0, 0).single().unwrap());
        let (no, name) = a_student(&s, 2).await;
        let admin = s.login("4401060001-admin").await;
        let class = class_id(&s, &admin, "4401060001", "13").await;
        let t = ok(
            post(
                &s,
                &admin,
                "/api/v1/transfers",
                application(&no, &name, class),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(t["steps"][0]["due_date"], "2024-10-15");
        let d: Value = s
            .get(
                "/api/v1/calendar/add-working-days?from=2024-09-27&days=10",
                &admin,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            d["date"], "2024-10-16",
            "the calendar endpoint does not count `from` itself"
        );
        s.stop().await;
    }
}

#[tokio::test]
async fn same_authority_approves_once_and_intra_province_is_detected() {
    for backend in backends() {
        let s = Srv::start(backend).await;
        let (no, name) = a_student(&s, 3).await;
        let admin = s.login("4101050002-admin").await;
        let class = class_id(&s, &admin, "4101050002", "13").await;
        let t = ok(
            post(
                &s,
                &admin,
                "/api/v1/transfers",
                application(&no, &name, class),
            )
            .await,
            201,
        )
        .await;
        assert_eq!(t["kind"], "intra_province");
        let steps: Vec<&str> = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["party"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["4101050002", "4101050001", "410105"]);
        s.stop().await;
    }
}
