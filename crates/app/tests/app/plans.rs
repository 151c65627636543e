//! The hot read queries keep their indexes: `EXPLAIN QUERY PLAN` of the transfer query and the
//! work lists, on SQLite (the embedded default; PostgreSQL's plans follow its statistics, which a
//! small test database does not have). At a million transfers a plan that lost its index turns a
//! 5 ms list into a full scan (docs/performance.md, "lists").

use xueji_app::testing::demo_app;
use xueji_app::transfers::TransferFilter;
use xueji_app::{App, Backend};

use crate::{dispose, user};

async fn plans(app: &App, who: &str, f: TransferFilter) -> (String, String) {
    let u = user(app, who).await;
    let (count, list) = app.transfer_query_plans(&u, &f).await.unwrap();
    (count.join(" | "), list.join(" | "))
}

#[tokio::test]
async fn transfer_lists_use_their_indexes() {
    let app = demo_app(Backend::Sqlite).await;
    let todo = || TransferFilter {
        todo: Some(true),
        ..Default::default()
    };
    // A school's own transfers: found through the two school indexes, never by a scan.
    let (count, list) = plans(&app, "4101050001-admin", TransferFilter::default()).await;
    for plan in [&count, &list] {
        assert!(
            plan.contains("transfers_to_school") && plan.contains("transfers_from_school"),
            "school list: {plan}"
        );
        assert!(!plan.contains("SCAN t "), "school list scans: {plan}");
    }
    // Work lists of reviewers and authorities start from their waiting steps.
    for who in ["4101050001-reviewer", "edu410105", "edu410000"] {
        let (count, list) = plans(&app, who, todo()).await;
        for plan in [&count, &list] {
            assert!(
                plan.contains("transfer_steps_party"),
                "{who} work list: {plan}"
            );
        }
    }
    // Authorities' escalated steps come from their own index.
    let (count, _) = plans(&app, "edu410000", todo()).await;
    assert!(count.contains("transfer_steps_escalated"), "{count}");
    // A county's transfers by its region indexes.
    let (count, _) = plans(&app, "edu410105", TransferFilter::default()).await;
    assert!(
        count.contains("transfers_to_region") && count.contains("transfers_from_region"),
        "county count: {count}"
    );
    // A province's lists: each half (received; sent and not received) counted from one
    // covering index, the page's ids chosen from the same indexes before any row is read.
    let province = |f: TransferFilter| plans(&app, "edu410000", f);
    let by_status = TransferFilter {
        status: Some("in_school_review".into()),
        ..Default::default()
    };
    let by_dates = TransferFilter {
        from_date: chrono::NaiveDate::from_ymd_opt(2026, 3, 1),
        to_date: chrono::NaiveDate::from_ymd_opt(2026, 4, 1),
        kind: Some("intra_province".into()),
        ..Default::default()
    };
    let by_name = TransferFilter {
        q: Some("王".into()),
        ..Default::default()
    };
    for (what, f, index) in [
        (
            "everything",
            TransferFilter::default(),
            "transfers_to_region",
        ),
        ("by status", by_status, "transfers_status_to"),
        ("by dates", by_dates, "transfers_created"),
        ("by name", by_name, "transfers_name"),
        (
            "overdue",
            TransferFilter {
                overdue: Some(true),
                ..Default::default()
            },
            "transfers_waiting_to",
        ),
    ] {
        let (count, list) = province(f).await;
        for plan in [&count, &list] {
            assert!(
                plan.contains(&format!("COVERING INDEX {index} ")),
                "province {what}: {plan}"
            );
            assert!(
                !plan.contains("SCAN t ") && !plan.contains("MULTI-INDEX OR"),
                "province {what} reads rows to test the OR: {plan}"
            );
        }
    }
    dispose(&app.db).await;
}

/// Students by name within a province: counted from the name index alone (name, region,
/// school) and paged in that index's order, the exact number asked apart — an `OR` of the
/// two read every namesake's row (15.9 s for a surname in a 10-million province).
#[tokio::test]
async fn student_lists_use_their_indexes() {
    use xueji_app::students::StudentFilter;
    let app = demo_app(Backend::Sqlite).await;
    let province = user(&app, "edu410000").await;
    let (count, list) = app
        .student_query_plans(
            &province,
            &StudentFilter {
                q: Some("王".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (count, list) = (count.join(" | "), list.join(" | "));
    assert!(
        count.contains("COVERING INDEX students_name (name>? AND name<?)"),
        "{count}"
    );
    assert!(
        list.contains("INDEX students_name (name>? AND name<?)"),
        "{list}"
    );
    assert!(!list.contains("TEMP B-TREE FOR ORDER BY"), "a sort: {list}");
    // A school's roster walks its index in the order shown.
    let school = user(&app, "4101050001-admin").await;
    let (count, list) = app
        .student_query_plans(&school, &StudentFilter::default())
        .await
        .unwrap();
    for plan in [count.join(" | "), list.join(" | ")] {
        assert!(plan.contains("students_school (school_id=?)"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "a sort: {plan}");
    }
    dispose(&app.db).await;
}

/// PostgreSQL's plans follow statistics a small test database does not have, so its name
/// indexes are held by their definitions: in the "C" collation (a prefix stays an index range in
/// a generic plan) and with the id, so that a page's ids come from the index alone (students
/// 134 → 7.7 ms at a million, transfers 47 → 15 ms at ten million; docs/performance.md).
#[tokio::test]
async fn postgres_name_indexes_hold_the_ids() {
    if !xueji_app::testing::backends().contains(&Backend::Postgres) {
        return;
    }
    let app = demo_app(Backend::Postgres).await;
    let defs: Vec<(String, String)> = xueji_app::on_pool!(app.db.read(), p => sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE indexname IN ('students_name_c', 'transfers_name')"
    ).fetch_all(p).await)
    .unwrap();
    let def = |name: &str| {
        defs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no index {name}"))
    };
    let students = def("students_name_c");
    assert!(
        students.contains("(name COLLATE \"C\", region_code, school_id, id)"),
        "{students}"
    );
    let transfers = def("transfers_name");
    assert!(
        transfers.contains("(student_name COLLATE \"C\", to_region, from_region) INCLUDE (id)"),
        "{transfers}"
    );
    dispose(&app.db).await;
}

/// The plans on a real database, as this build's SQLite makes them (the `sqlite3` shell may be
/// another version and plan otherwise): `XUEJI_PLAN_DB=/path/to/bench.db XUEJI_PLAN_USER=edu410611
/// cargo test -p xueji-app --test app -- --ignored plans_on_a_database --nocapture`.
#[tokio::test]
#[ignore = "reads a database named by XUEJI_PLAN_DB"]
async fn plans_on_a_database() {
    let path = std::env::var("XUEJI_PLAN_DB").expect("XUEJI_PLAN_DB");
    let who = std::env::var("XUEJI_PLAN_USER").unwrap_or_else(|_| "edu410000".into());
    // A path to an SQLite file, or a `postgres://` URL.
    let url = if path.contains("://") {
        path
    } else {
        format!("sqlite://{path}")
    };
    let db = xueji_app::Db::connect(&url).await.unwrap();
    let app = App::new(db, xueji_app::clock::Clock::system())
        .await
        .unwrap();
    let u = user(&app, &who).await;
    let f = |v: serde_json::Value| -> TransferFilter { serde_json::from_value(v).unwrap() };
    let shapes = [
        ("todo", f(serde_json::json!({ "todo": true }))),
        (
            "todo in",
            f(serde_json::json!({ "todo": true, "direction": "in" })),
        ),
        ("overdue", f(serde_json::json!({ "overdue": true }))),
        (
            "status",
            f(serde_json::json!({ "status": "in_school_review" })),
        ),
        (
            "dates",
            f(
                serde_json::json!({ "from_date": "2026-03-01", "to_date": "2026-04-01", "kind": "intra_province" }),
            ),
        ),
        ("name", f(serde_json::json!({ "q": "王" }))),
    ];
    for (what, f) in shapes {
        let (count, list) = app.transfer_query_plans(&u, &f).await.unwrap();
        // Ten runs of the whole query (count and first page), in order: PostgreSQL plans a
        // prepared statement for its values five times, then may switch to a generic plan.
        let mut ms = vec![];
        let mut total = 0;
        for _ in 0..10 {
            let t = std::time::Instant::now();
            total = app
                .transfers(&u, &f, Default::default())
                .await
                .unwrap()
                .total;
            ms.push(format!("{:.1}", t.elapsed().as_secs_f64() * 1000.0));
        }
        println!(
            "{what}: {total} rows, ms {}\n  count {}\n  list  {}",
            ms.join(" "),
            count.join(" | "),
            list.join(" | ")
        );
    }
    let t = std::time::Instant::now();
    let d = app.dashboard(&u, None).await.unwrap();
    println!(
        "dashboard: {} waiting, {} schools, {:.1} ms",
        d.total.waiting,
        d.schools_waiting,
        t.elapsed().as_secs_f64() * 1000.0
    );
}
