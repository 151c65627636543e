//! Students and schools over HTTP: jurisdiction, masking of identity numbers, pagination.

use std::collections::BTreeSet;

use serde_json::Value;
use xueji_app::testing::backends;

use crate::{Srv, content_type, expect_problem, total};

/// `410105********123X`: 6 digits, 8 stars, 3 digits and a digit or X.
fn is_masked(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 18
        && b[..6].iter().all(u8::is_ascii_digit)
        && b[6..14].iter().all(|c| *c == b'*')
        && b[14..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'X')
}

async fn rows(srv: &Srv, path: &str, token: &str) -> (Vec<Value>, i64) {
    let res = srv.get(path, token).await;
    assert_eq!(res.status().as_u16(), 200, "{:?}: {path}", srv.backend);
    assert!(content_type(&res).starts_with("application/json"));
    let n = total(&res);
    let v: Value = res.json().await.expect("JSON");
    (v.as_array().expect("a JSON array").clone(), n)
}

#[tokio::test]
async fn lists_and_records_are_scoped_to_the_caller() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let moe = srv.login("moe").await;
        let (zhongyuan, _) = rows(&srv, "/api/v1/students?school=4101020001", &moe).await;
        let other_no = zhongyuan[0]["student_no"]
            .as_str()
            .expect("student_no")
            .to_string();
        let (jinshui2, _) = rows(&srv, "/api/v1/students?school=4101050002", &moe).await;
        let neighbour_no = jinshui2[0]["student_no"]
            .as_str()
            .expect("student_no")
            .to_string();

        // A county authority: not another county's school, nor its students.
        let county = srv.login("edu410105").await;
        expect_problem(
            srv.get("/api/v1/students?school=4101020001", &county).await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            srv.get(&format!("/api/v1/students/{other_no}"), &county)
                .await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            srv.get("/api/v1/schools/4101020001/classes", &county).await,
            404,
            "not_found",
        )
        .await;
        let (schools, n) = rows(&srv, "/api/v1/schools", &county).await;
        assert_eq!(n, 3, "{b:?}");
        assert!(
            schools
                .iter()
                .all(|s| s["region"] == "410105" && s["authority"] == "410105"),
            "{b:?}"
        );
        let (none, n) = rows(&srv, "/api/v1/schools?region=410102", &county).await;
        assert!(none.is_empty() && n == 0, "{b:?}");

        // A school: not another school's student, even in the same county.
        let school = srv.login("4101050001-admin").await;
        expect_problem(
            srv.get(&format!("/api/v1/students/{neighbour_no}"), &school)
                .await,
            404,
            "not_found",
        )
        .await;
        expect_problem(
            srv.get("/api/v1/students?school=4101050002", &school).await,
            404,
            "not_found",
        )
        .await;
        let (own, n) = rows(&srv, "/api/v1/schools", &school).await;
        assert_eq!((own.len(), n), (1, 1), "{b:?}");
        assert_eq!(own[0]["code"], "4101050001");
        let (_, n) = rows(&srv, "/api/v1/students?per_page=1", &school).await;
        assert_eq!(n, 48, "{b:?}: a school's list is its own students");

        // The city above both counties sees both.
        let city = srv.login("edu410100").await;
        let (list, n) = rows(&srv, "/api/v1/students?school=4101020001", &city).await;
        assert_eq!((list.len(), n), (48, 48), "{b:?}");
        let res = srv
            .get(&format!("/api/v1/students/{other_no}"), &city)
            .await;
        assert_eq!(res.status().as_u16(), 200, "{b:?}");
        let detail: Value = res.json().await.expect("JSON");
        assert_eq!(detail["student_no"], other_no.as_str());
        let (schools, n) = rows(&srv, "/api/v1/schools", &city).await;
        assert_eq!(n, 6, "{b:?}");
        let regions: BTreeSet<&str> = schools
            .iter()
            .filter_map(|s| s["region"].as_str())
            .collect();
        assert_eq!(regions, BTreeSet::from(["410102", "410105"]), "{b:?}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn identity_numbers_are_masked_in_lists() {
    for b in backends() {
        let srv = Srv::start(b).await;
        // The holding school, its authority and the national administrator all get masked lists.
        for (who, school) in [
            ("4101050001-admin", "4101050001"),
            ("edu410105", "4101050002"),
            ("moe", "4401060003"),
        ] {
            let token = srv.login(who).await;
            let path = format!("/api/v1/students?school={school}&per_page=500");
            let res = srv.get(&path, &token).await;
            assert_eq!(res.status().as_u16(), 200);
            let body = res.text().await.expect("body");
            let list: Vec<Value> = serde_json::from_str(&body).expect("JSON array");
            assert!(list.len() >= 20, "{b:?}: {who}");
            let mut ids = vec![];
            for row in &list {
                for k in [
                    "student_no",
                    "name",
                    "gender",
                    "birth_date",
                    "id_number_masked",
                    "grade",
                    "class_id",
                    "status",
                ] {
                    assert!(
                        row.get(k).is_some(),
                        "{b:?}: field {k} of API.md missing: {row}"
                    );
                }
                let masked = row["id_number_masked"].as_str().expect("masked");
                assert!(is_masked(masked), "{b:?}: {who}: {masked:?}");
                assert!(
                    row.get("id_number").is_none_or(Value::is_null),
                    "{b:?}: {row}"
                );
                let no = row["student_no"].as_str().expect("student_no");
                let id = no.strip_prefix('G').expect("formal numbers in the demo");
                assert_eq!(&masked[..6], &id[..6]);
                assert_eq!(&masked[14..], &id[14..]);
                ids.push(id.to_string());
            }
            // Apart from inside the formal student number (G + id, fixed by API.md), no whole
            // identity number appears anywhere in the answer.
            let mut rest = body.clone();
            for id in &ids {
                rest = rest.replace(&format!("G{id}"), "G");
            }
            for id in &ids {
                assert!(
                    !rest.contains(id.as_str()),
                    "{b:?}: {who}: a whole identity number in the list"
                );
            }
        }
        srv.stop().await;
    }
}

#[tokio::test]
async fn the_whole_number_is_shown_to_the_holding_school_only() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let school = srv.login("4101050001-admin").await;
        let (list, _) = rows(
            &srv,
            "/api/v1/students?school=4101050001&per_page=1",
            &school,
        )
        .await;
        let no = list[0]["student_no"].as_str().expect("no").to_string();
        let detail: Value = srv
            .get(&format!("/api/v1/students/{no}"), &school)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(
            detail["id_number"].as_str().map(|id| format!("G{id}")),
            Some(no.clone()),
            "{b:?}"
        );
        for other in ["edu410105", "edu410000", "moe"] {
            let token = srv.login(other).await;
            let res = srv.get(&format!("/api/v1/students/{no}"), &token).await;
            assert_eq!(res.status().as_u16(), 200, "{b:?}: {other}");
            let d: Value = res.json().await.expect("JSON");
            assert!(
                d["id_number"].is_null(),
                "{b:?}: {other} gets {}",
                d["id_number"]
            );
            assert!(
                is_masked(d["id_number_masked"].as_str().expect("masked")),
                "{b:?}"
            );
        }
        srv.stop().await;
    }
}

#[tokio::test]
async fn pagination_follows_api_md() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let moe = srv.login("moe").await;
        let mut seen = BTreeSet::new();
        for page in 1..=5 {
            let (list, n) = rows(
                &srv,
                &format!("/api/v1/students?school=4101050001&per_page=10&page={page}"),
                &moe,
            )
            .await;
            assert_eq!(n, 48, "{b:?}: X-Total-Count of a 小学");
            assert_eq!(
                list.len(),
                if page < 5 { 10 } else { 8 },
                "{b:?}: page {page}"
            );
            for r in list {
                assert!(
                    seen.insert(r["student_no"].as_str().expect("no").to_string()),
                    "{b:?}: pages overlap"
                );
            }
        }
        assert_eq!(seen.len(), 48, "{b:?}");
        let (past_end, n) = rows(
            &srv,
            "/api/v1/students?school=4101050001&per_page=10&page=6",
            &moe,
        )
        .await;
        assert!(past_end.is_empty() && n == 48, "{b:?}");
        // Default 50 per page; at most 500.
        let (list, n) = rows(&srv, "/api/v1/students?school=4101050002", &moe).await;
        assert_eq!((list.len(), n), (50, 72), "{b:?}: default per_page is 50");
        let (list, n) = rows(&srv, "/api/v1/students?per_page=500", &moe).await;
        assert_eq!((list.len(), n), (500, 1008), "{b:?}");
        let (list, n) = rows(&srv, "/api/v1/schools?per_page=5&page=5", &moe).await;
        assert_eq!((list.len(), n), (1, 21), "{b:?}");
        for bad in [
            "/api/v1/students?school=4101050001&per_page=501",
            "/api/v1/students?school=4101050001&per_page=0",
            "/api/v1/students?school=4101050001&page=0",
            "/api/v1/students?school=4101050001&page=-1",
            "/api/v1/students?school=4101050001&page=abc",
            "/api/v1/schools?per_page=501",
            "/api/v1/schools?page=0",
        ] {
            expect_problem(srv.get(bad, &moe).await, 422, "validation_failed").await;
        }
        srv.stop().await;
    }
}
