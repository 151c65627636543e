//! The statements of every workflow step keep their indexes (issue 6): the one read of a
//! transfer with its steps, the transition's UPDATE, the decision, and 调档's move of the student.
//! SQLite by `EXPLAIN QUERY PLAN`; PostgreSQL by `EXPLAIN` with sequential scans priced out (a
//! small test database would otherwise be scanned, index or not): a plan that still scans has
//! no index to use.

use chrono::{NaiveDate, Utc};
use xueji_app::testing::{backends, demo_app};
use xueji_app::transfers::hot_sql;
use xueji_app::{App, Backend, on_tx};

use crate::dispose;

/// A statement's bound values, typed as the real call binds them.
enum V {
    I(i64),
    T(&'static str),
    OT(Option<&'static str>),
    OI(Option<i64>),
    B(bool),
    Tm,
    OD(Option<NaiveDate>),
}

async fn plan(app: &App, sql: &str, binds: &[V]) -> String {
    let backend = app.db.backend();
    let explain = match backend {
        Backend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
        Backend::Postgres => format!("EXPLAIN {sql}"),
    };
    let mut tx = app.db.begin().await.unwrap();
    if backend == Backend::Postgres {
        on_tx!(&mut tx, c => sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *c).await.map(|_| ()))
            .unwrap();
    }
    let lines: Vec<String> = on_tx!(&mut tx, c => {
        use sqlx::Row;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(explain.as_str()));
        for v in binds {
            q = match v {
                V::I(i) => q.bind(*i),
                V::T(s) => q.bind(*s),
                V::OT(s) => q.bind(*s),
                V::OI(i) => q.bind(*i),
                V::B(b) => q.bind(*b),
                V::Tm => q.bind(Utc::now()),
                V::OD(d) => q.bind(*d),
            };
        }
        let rows = q.fetch_all(&mut *c).await.unwrap();
        // SQLite: (id, parent, notused, detail); PostgreSQL: one text column.
        rows.iter()
            .map(|r| r.try_get::<String, _>(r.len() - 1).unwrap())
            .collect()
    });
    drop(tx);
    lines.join(" | ")
}

fn uses(plan: &str, what: &[&str]) {
    for w in what {
        assert!(plan.contains(w), "expected {w:?} in the plan: {plan}");
    }
    assert!(
        !plan.contains("Seq Scan") && !plan.split(" | ").any(|l| l.trim().starts_with("SCAN ")),
        "a scan in the plan: {plan}"
    );
}

#[tokio::test]
async fn workflow_statements_use_their_indexes() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let pg = backend == Backend::Postgres;

        let load = plan(&app, hot_sql::LOAD, &[V::I(1)]).await;
        if pg {
            uses(
                &load,
                &[
                    "transfers_pkey",
                    "transfer_steps_pkey",
                    "transfer_evidence_transfer",
                    "docked_provinces_pkey",
                ],
            );
        } else {
            uses(
                &load,
                &[
                    "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)",
                    "SEARCH st USING INDEX sqlite_autoindex_transfer_steps_1 (transfer_id=?)",
                    "transfer_evidence_transfer (transfer_id=?)",
                    "SEARCH d USING",
                ],
            );
        }

        let review = plan(
            &app,
            hot_sql::review(),
            &[
                V::T("in_authority_review"),
                V::I(1),
                V::Tm,
                V::I(1),
                V::I(0),
                V::OD(NaiveDate::from_ymd_opt(2026, 11, 20)),
            ],
        )
        .await;
        if pg {
            uses(&review, &["transfers_pkey"]);
        } else {
            uses(
                &review,
                &["SEARCH transfers USING INTEGER PRIMARY KEY (rowid=?)"],
            );
        }

        let decide = plan(
            &app,
            hot_sql::DECIDE,
            &[
                V::I(0),
                V::T("approve"),
                V::OT(Some("同意")),
                V::OI(Some(1)),
                V::T("审核员"),
                V::Tm,
                V::B(false),
                V::I(1),
                V::OD(NaiveDate::from_ymd_opt(2026, 11, 2)),
                V::OD(NaiveDate::from_ymd_opt(2026, 11, 13)),
                V::I(1),
            ],
        )
        .await;
        if pg {
            uses(&decide, &["transfer_steps_pkey"]);
        } else {
            uses(
                &decide,
                &["sqlite_autoindex_transfer_steps_1 (transfer_id=?"],
            );
        }

        let moved = plan(
            &app,
            hot_sql::MOVE_STUDENT,
            &[
                V::I(1),
                V::T("13"),
                V::I(1),
                V::T("440106"),
                V::Tm,
                V::I(1),
                V::I(2),
            ],
        )
        .await;
        if pg {
            uses(&moved, &["students_pkey", "students_class", "classes_pkey"]);
        } else {
            uses(
                &moved,
                &[
                    "SEARCH students USING INTEGER PRIMARY KEY (rowid=?)",
                    "students_class (class_id=?)",
                    "SEARCH classes USING INTEGER PRIMARY KEY (rowid=?)",
                ],
            );
        }
        dispose(&app.db).await;
    }
}

/// The 督办 dashboard reads the waiting steps of a region from the partial index
/// `transfer_steps_waiting` alone (by the waiting party's region, grouped in the index's order
/// without a sort), the escalated ones from their own index, and only the overdue list's few
/// transfers by their key: no scan of the transfers or of every step.
#[tokio::test]
async fn dashboard_statements_use_their_indexes() {
    use xueji_app::oversight::dashboard_sql;
    for backend in backends() {
        let app = demo_app(backend).await;
        let range_and_dates = [
            V::T("410000"),
            V::T("420000"),
            V::OD(NaiveDate::from_ymd_opt(2026, 11, 2)),
            V::OD(NaiveDate::from_ymd_opt(2026, 11, 5)),
        ];
        let json = |inner: String| dashboard_sql::groups_json(backend, &inner);
        let groups = plan(
            &app,
            &json(dashboard_sql::groups(backend)),
            &range_and_dates,
        )
        .await;
        let escalated = plan(
            &app,
            &json(dashboard_sql::escalated_groups(backend)),
            &range_and_dates,
        )
        .await;
        // A county's or city's overdue list from its region's range, a province's (or the
        // nation's) in due-date order from its own index, reading only the first entries.
        let overdue = plan(
            &app,
            &dashboard_sql::overdue_json(backend, false),
            &range_and_dates[..3],
        )
        .await;
        let overdue_wide = plan(
            &app,
            &dashboard_sql::overdue_json(backend, true),
            &range_and_dates[..3],
        )
        .await;
        let sqlite = backend == Backend::Sqlite;
        let region_steps = if sqlite {
            "COVERING INDEX transfer_steps_waiting (party_region>? AND party_region<?)"
        } else {
            "Index Only Scan using transfer_steps_waiting"
        };
        let escalated_steps = "transfer_steps_escalated (escalated_to>? AND escalated_to<?)";
        assert!(groups.contains(region_steps), "{groups}");
        // (PostgreSQL's planner may answer the escalated steps from the waiting steps' index)
        if sqlite {
            assert!(escalated.contains(escalated_steps), "{escalated}");
            assert!(
                overdue.contains(region_steps)
                    && overdue.contains(escalated_steps)
                    && overdue.contains("SEARCH t USING INTEGER PRIMARY KEY (rowid=?)"),
                "{overdue}"
            );
            assert!(
                overdue_wide.contains("transfer_steps_waiting_due (due_date<?)")
                    && !overdue_wide.contains("transfer_steps_waiting (")
                    && overdue_wide.contains(escalated_steps),
                "{overdue_wide}"
            );
            // The region's steps are grouped as the index yields them, without a sort.
            assert!(!groups.contains("TEMP B-TREE"), "sorted: {groups}");
        }
        for p in [&groups, &escalated] {
            assert!(!p.contains("transfers"), "the counts read no transfer: {p}");
        }
        for p in [&groups, &escalated, &overdue, &overdue_wide] {
            // Only the statement's own intermediate results (g) are read whole.
            assert!(
                !p.contains("Seq Scan")
                    && p.split(" | ")
                        .all(|l| !l.trim().starts_with("SCAN ") || ["SCAN g"].contains(&l.trim())),
                "a scan in the plan: {p}"
            );
        }
        dispose(&app.db).await;
    }
}
