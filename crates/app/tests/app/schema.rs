//! The two dialects' migrations define the same tables and columns, and migrating is idempotent.

use std::collections::BTreeSet;

use xueji_app::Backend;
use xueji_app::testing::{backends, empty_db};

use crate::dispose;

/// Tables the use cases rely on (DESIGN.md §3).
const EXPECTED_TABLES: &[&str] = &[
    "audit_head",
    "audit_log",
    "authorities",
    "classes",
    "enrollments",
    "ethnicities",
    "holidays",
    "id_types",
    "login_failures",
    "notifications",
    "open_businesses",
    "regions",
    "schools",
    "sessions",
    "student_numbers",
    "students",
    "transfer_steps",
    "transfers",
    "users",
];

#[tokio::test]
async fn schema_is_the_same_on_both_backends() {
    let sqlite = empty_db(Backend::Sqlite).await;
    let sqlite_cols = sqlite.schema_columns().await.expect("sqlite schema");
    let tables: BTreeSet<&str> = sqlite_cols.iter().map(|(t, _)| t.as_str()).collect();
    for t in EXPECTED_TABLES {
        assert!(
            tables.contains(t),
            "table {t} missing on SQLite: {tables:?}"
        );
    }
    assert!(
        !tables
            .iter()
            .any(|t| t.starts_with("_sqlx") || t.starts_with("sqlite_")),
        "bookkeeping tables must not be compared: {tables:?}"
    );
    assert!(
        sqlite_cols.contains(&("students".into(), "id_number".into())),
        "students.id_number missing"
    );
    if backends().contains(&Backend::Postgres) {
        let pg = empty_db(Backend::Postgres).await;
        let pg_cols = pg.schema_columns().await.expect("postgres schema");
        let only_sqlite: Vec<_> = sqlite_cols
            .iter()
            .filter(|c| !pg_cols.contains(c))
            .collect();
        let only_pg: Vec<_> = pg_cols
            .iter()
            .filter(|c| !sqlite_cols.contains(c))
            .collect();
        assert!(
            only_sqlite.is_empty() && only_pg.is_empty(),
            "schemas differ: only on SQLite {only_sqlite:?}; only on PostgreSQL {only_pg:?}"
        );
        assert_eq!(sqlite_cols, pg_cols);
        dispose(&pg).await;
    }
    dispose(&sqlite).await;
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    for b in backends() {
        let db = empty_db(b).await;
        let before = db.schema_columns().await.expect("schema");
        db.migrate().await.expect("second migration");
        db.migrate().await.expect("third migration");
        assert_eq!(before, db.schema_columns().await.expect("schema"), "{b:?}");
        // The audit chain head is seeded once, not once per run.
        assert_eq!(
            crate::count(&db, "SELECT COUNT(*) FROM audit_head").await,
            1,
            "{b:?}"
        );
        dispose(&db).await;
    }
}
