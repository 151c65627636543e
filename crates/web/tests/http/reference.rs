//! Regions, classes and the working-day calendar over HTTP.

use serde_json::Value;
use xueji_app::testing::backends;

use crate::{Srv, expect_problem};

async fn json(srv: &Srv, path: &str, token: &str) -> Value {
    let res = srv.get(path, token).await;
    assert_eq!(res.status().as_u16(), 200, "{:?}: {path}", srv.backend);
    res.json().await.expect("JSON")
}

#[tokio::test]
async fn regions_by_parent() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let token = srv.login("4401060001-admin").await;
        let provinces = json(&srv, "/api/v1/regions", &token).await;
        let provinces = provinces.as_array().expect("array");
        assert_eq!(provinces.len(), 32, "{b:?}");
        assert!(
            provinces.iter().any(|r| r["code"] == "660000"),
            "{b:?}: 兵团"
        );
        assert!(
            provinces.iter().any(|r| r["code"] == "410000"
                && r["name"] == "河南省"
                && r["level"] == "province")
        );
        let zhengzhou = json(&srv, "/api/v1/regions?parent=410100", &token).await;
        assert!(
            zhengzhou
                .as_array()
                .expect("array")
                .iter()
                .any(|r| r["code"] == "410105" && r["name"] == "金水区"),
            "{b:?}: {zhengzhou}"
        );
        let beijing = json(&srv, "/api/v1/regions?parent=110000", &token).await;
        assert!(
            !beijing.as_array().expect("array").is_empty(),
            "{b:?}: 北京 has children"
        );
        let leaf = json(&srv, "/api/v1/regions?parent=410105", &token).await;
        assert_eq!(
            leaf,
            Value::Array(vec![]),
            "{b:?}: a county has no children"
        );
        for bad in ["abc", "41010", "990000"] {
            expect_problem(
                srv.get(&format!("/api/v1/regions?parent={bad}"), &token)
                    .await,
                422,
                "validation_failed",
            )
            .await;
        }
        srv.stop().await;
    }
}

#[tokio::test]
async fn classes_of_a_school() {
    for b in backends() {
        let srv = Srv::start(b).await;
        let token = srv.login("4101050002-admin").await;
        let classes = json(&srv, "/api/v1/schools/4101050002/classes", &token).await;
        let classes = classes.as_array().expect("array");
        assert_eq!(classes.len(), 18, "{b:?}: 9 grades × 2 classes");
        for c in classes {
            for k in ["id", "grade", "name", "capacity", "enrolled"] {
                assert!(c.get(k).is_some(), "{b:?}: {k} missing: {c}");
            }
            assert_eq!(c["enrolled"], 4, "{b:?}");
        }
        srv.stop().await;
    }
}

#[tokio::test]
async fn calendar_adds_working_days() {
    let srv = Srv::start(xueji_app::Backend::Sqlite).await;
    let token = srv.login("moe").await;
    for (from, days, want) in [
        // 国庆 2024: 10-01..07 off, 09-29 (Sun) and 10-12 (Sat) worked.
        ("2024-09-27", 10, "2024-10-16"),
        // 春节 2025: 01-26 (Sun) is a make-up working day.
        ("2025-01-24", 1, "2025-01-26"),
        ("2025-01-26", 1, "2025-01-27"),
        ("2025-01-27", 1, "2025-02-05"),
        // 国庆 2026: 10-01..07 off, 10-10 (Sat) worked.
        ("2026-09-30", 1, "2026-10-08"),
        ("2026-09-30", 3, "2026-10-10"),
        // An ordinary week.
        ("2026-11-02", 5, "2026-11-09"),
    ] {
        let path = format!("/api/v1/calendar/add-working-days?from={from}&days={days}");
        let v = json(&srv, &path, &token).await;
        assert_eq!(v, serde_json::json!({ "date": want }), "{from} + {days}");
    }
    for bad in [
        "from=2024-13-01&days=1",
        "from=2024-02-30&days=1",
        "from=20240927&days=1",
        "from=yesterday&days=1",
        "from=2024-09-27&days=x",
        "from=2024-09-27&days=-1",
        "from=2024-09-27",
        "days=1",
    ] {
        let res = srv
            .get(&format!("/api/v1/calendar/add-working-days?{bad}"), &token)
            .await;
        expect_problem(res, 422, "validation_failed").await;
    }
    srv.stop().await;
}
