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
    dispose(&app.db).await;
}
