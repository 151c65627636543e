//! The SQLite group commit behind `Db::begin`: concurrent logical transactions share physical
//! commits; a failed or dropped one is undone alone; nothing is left open.

use std::time::Duration;

use xueji_app::testing::{backends, empty_db};
use xueji_app::{Db, on_tx};

use crate::{count, exec};

async fn insert(db: &Db, id: i64, keep: bool) -> Result<(), xueji_app::AppError> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query("INSERT INTO gc_probe (id) VALUES ($1)").bind(id).execute(&mut *c).await.map(|_| ()))?;
    if keep {
        tx.commit().await
    } else {
        drop(tx);
        Ok(())
    }
}

/// Another write goes through at once (nothing holds the writer), then the database closes.
async fn writer_is_free_and_closes(db: Db, id: i64) {
    let sql = format!("INSERT INTO gc_probe (id) VALUES ({id})");
    tokio::time::timeout(Duration::from_secs(5), exec(&db, &sql))
        .await
        .expect("the writer is free again")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), db.close())
        .await
        .expect("close does not hang");
}

#[tokio::test]
async fn concurrent_transactions_commit_or_vanish_alone() {
    for backend in backends() {
        let db = empty_db(backend).await;
        exec(&db, "CREATE TABLE gc_probe (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        let mut tasks = vec![];
        for i in 0..200i64 {
            let db = db.clone();
            // Every third is dropped uncommitted; every seventh collides with a committed key.
            let id = if i % 7 == 6 { i - 1 } else { i };
            tasks.push(tokio::spawn(async move {
                (id, i % 3 != 2, insert(&db, id, i % 3 != 2).await)
            }));
        }
        let mut expected = std::collections::BTreeSet::new();
        for t in tasks {
            let (id, keep, r) = t.await.unwrap();
            match r {
                Ok(()) if keep => {
                    assert!(expected.insert(id), "a key committed twice");
                }
                Ok(()) => {}
                Err(e) => assert!(e.is_unique_violation(), "{e}"),
            }
        }
        let n = count(&db, "SELECT COUNT(*) FROM gc_probe").await;
        assert_eq!(
            n as usize,
            expected.len(),
            "exactly the acknowledged rows are there"
        );
        // A dropped transaction as the last writer does not keep the writer busy.
        insert(&db, 10_000, false).await.unwrap();
        writer_is_free_and_closes(db, 10_001).await;
    }
}

/// `Db::begin_solo` (the import's transaction): it commits what the batch holds before it,
/// is undone whole when dropped, and keeps nothing of a big write in memory under a savepoint
/// (what it is for; measured by the benchmark, not here). Writers beside it wait and go on.
#[tokio::test]
async fn a_solo_transaction_commits_or_vanishes_whole_among_batched_ones() {
    for backend in backends() {
        let db = empty_db(backend).await;
        exec(&db, "CREATE TABLE gc_probe (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        let solo = |db: Db, from: i64, keep: bool| async move {
            let mut tx = db.begin_solo().await?;
            for id in from..from + 50 {
                on_tx!(&mut tx, c => sqlx::query("INSERT INTO gc_probe (id) VALUES ($1)").bind(id).execute(&mut *c).await.map(|_| ()))?;
            }
            if keep {
                tx.commit().await
            } else {
                drop(tx);
                Ok(())
            }
        };
        let mut tasks = vec![];
        for i in 0..40i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                match i % 10 {
                    0 => solo(db, 1_000 + i * 100, true).await.map(|_| 50),
                    5 => solo(db, 1_000 + i * 100, false).await.map(|_| 0),
                    _ => insert(&db, i, true).await.map(|_| 1),
                }
            }));
        }
        let mut expected = 0i64;
        for t in tasks {
            expected += t.await.unwrap().expect("every writer goes through");
        }
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM gc_probe").await,
            expected,
            "the kept solo rows, all of them, and every batched row"
        );
        // A dropped solo transaction as the last writer leaves the writer free.
        solo(db.clone(), 90_000, false).await.unwrap();
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM gc_probe WHERE id >= 90000 AND id < 90050"
            )
            .await,
            0
        );
        writer_is_free_and_closes(db, 99_999).await;
    }
}
