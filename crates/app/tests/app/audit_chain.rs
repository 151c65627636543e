//! The audit trail is a hash chain: `verify` finds the first altered or missing row.

use xueji_app::audit::{ChainCheck, verify};
use xueji_app::testing::{backends, demo_app};

use crate::{count, dispose, exec, user};

#[tokio::test]
async fn chain_is_intact_after_seeding_and_logins() {
    for b in backends() {
        let app = demo_app(b).await;
        let seeded = match verify(&app.db).await.expect("verify") {
            ChainCheck::Intact { rows } => rows,
            broken => panic!("{b:?}: fresh demo chain {broken:?}"),
        };
        assert!(seeded >= 1, "{b:?}: seeding is audited");
        for name in ["moe", "edu410105", "4101050001-admin"] {
            user(&app, name).await;
        }
        assert_eq!(
            verify(&app.db).await.expect("verify"),
            ChainCheck::Intact { rows: seeded + 3 },
            "{b:?}"
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'login'"
            )
            .await,
            3
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn an_altered_row_breaks_the_chain_at_that_row() {
    for b in backends() {
        let app = demo_app(b).await;
        user(&app, "moe").await;
        user(&app, "edu410000").await;
        assert!(matches!(
            verify(&app.db).await.expect("verify"),
            ChainCheck::Intact { .. }
        ));
        assert_eq!(
            exec(&app.db, "UPDATE audit_log SET action = 'x' WHERE seq = 1")
                .await
                .expect("tamper"),
            1
        );
        match verify(&app.db).await.expect("verify") {
            ChainCheck::Broken { seq, .. } => assert_eq!(seq, 1, "{b:?}"),
            intact => panic!("{b:?}: tampering went unnoticed: {intact:?}"),
        }
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_removed_or_rewritten_row_is_found() {
    for b in backends() {
        let app = demo_app(b).await;
        for name in ["moe", "edu410000", "edu410100", "edu410105"] {
            user(&app, name).await;
        }
        let last = count(&app.db, "SELECT MAX(seq) FROM audit_log").await;
        assert!(last >= 5, "{b:?}");

        // A changed actor in a middle row.
        let mid = last - 2;
        exec(
            &app.db,
            &format!("UPDATE audit_log SET actor_name = 'someone' WHERE seq = {mid}"),
        )
        .await
        .expect("tamper");
        let broken = verify(&app.db).await.expect("verify");
        assert!(
            matches!(broken, ChainCheck::Broken { seq, .. } if seq == mid),
            "{b:?}: {broken:?}"
        );
        dispose(&app.db).await;

        // A deleted middle row: the chain names the missing row.
        let app = demo_app(b).await;
        for name in ["moe", "edu410000", "edu410100"] {
            user(&app, name).await;
        }
        let last = count(&app.db, "SELECT MAX(seq) FROM audit_log").await;
        exec(
            &app.db,
            &format!("DELETE FROM audit_log WHERE seq = {}", last - 1),
        )
        .await
        .expect("delete");
        let broken = verify(&app.db).await.expect("verify");
        assert!(
            matches!(broken, ChainCheck::Broken { seq, .. } if seq == last - 1),
            "{b:?}: {broken:?}"
        );
        dispose(&app.db).await;

        // A deleted last row: the head no longer matches.
        let app = demo_app(b).await;
        user(&app, "moe").await;
        let last = count(&app.db, "SELECT MAX(seq) FROM audit_log").await;
        exec(
            &app.db,
            &format!("DELETE FROM audit_log WHERE seq = {last}"),
        )
        .await
        .expect("delete");
        let broken = verify(&app.db).await.expect("verify");
        assert!(
            matches!(broken, ChainCheck::Broken { seq, .. } if seq == last),
            "{b:?}: {broken:?}"
        );
        dispose(&app.db).await;
    }
}

async fn write(app: &xueji_app::App, org: &str, entity: &str) {
    use xueji_app::audit::{AuditActor, AuditEvent, record};
    let mut tx = app.db.begin().await.expect("begin");
    record(
        &mut tx,
        app.clock.now(),
        &AuditActor {
            user_id: None,
            name: format!("test:{org}"),
            org: org.into(),
        },
        AuditEvent {
            action: "test",
            entity_type: "thing",
            entity_id: entity.into(),
            before: None,
            after: Some(serde_json::json!({ "entity": entity })),
        },
        None,
    )
    .await
    .expect("record");
    tx.commit().await.expect("commit");
}

/// One chain per province and entity shard: rows of two provinces never share a chain, and a
/// tampered row in each of two chains is reported chain by chain.
#[tokio::test]
async fn each_chain_reports_its_own_first_broken_link() {
    use xueji_app::audit::{chain_of, verify_chains};
    for b in backends() {
        let app = demo_app(b).await;
        for i in 0..20 {
            write(&app, "authority:410105", &format!("h{i}")).await;
            write(&app, "authority:440106", &format!("g{i}")).await;
        }
        let chains: Vec<i64> = verify_chains(&app.db)
            .await
            .expect("verify")
            .iter()
            .map(|c| c.chain)
            .collect();
        assert!(
            chains.iter().any(|c| c / 100 == 41) && chains.iter().any(|c| c / 100 == 44),
            "{b:?}: {chains:?}"
        );
        assert_eq!(chain_of(Some("410105"), "thing", "h1") / 100, 41);
        let in41 = count(
            &app.db,
            "SELECT MAX(seq) FROM audit_log WHERE chain / 100 = 41",
        )
        .await;
        let in44 = count(
            &app.db,
            "SELECT MIN(seq) FROM audit_log WHERE chain / 100 = 44",
        )
        .await;
        for seq in [in41, in44] {
            exec(
                &app.db,
                &format!("UPDATE audit_log SET after_json = '{{}}' WHERE seq = {seq}"),
            )
            .await
            .expect("tamper");
        }
        let reports = verify_chains(&app.db).await.expect("verify");
        let broken: Vec<(i64, i64)> = reports
            .iter()
            .filter_map(|c| c.broken.as_ref().map(|(s, _)| (c.chain, *s)))
            .collect();
        assert_eq!(broken.len(), 2, "{b:?}: {broken:?}");
        assert!(
            broken.iter().any(|(c, s)| c / 100 == 41 && *s == in41),
            "{b:?}: {broken:?}"
        );
        assert!(
            broken.iter().any(|(c, s)| c / 100 == 44 && *s == in44),
            "{b:?}: {broken:?}"
        );
        assert!(matches!(
            verify(&app.db).await.expect("verify"),
            ChainCheck::Broken { seq, .. } if seq == in41.min(in44)
        ));
        dispose(&app.db).await;
    }
}

/// Concurrent writers append to their own chains (on PostgreSQL they no longer queue on one
/// head); writers taking two provinces' heads in either order do not deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_cross_province_writers_keep_every_chain_intact() {
    use xueji_app::audit::{AuditActor, AuditEvent, chain_of, lock_chains, record_in};
    for b in backends() {
        let app = demo_app(b).await;
        let before = match verify(&app.db).await.expect("verify") {
            ChainCheck::Intact { rows } => rows,
            broken => panic!("{b:?}: {broken:?}"),
        };
        let mut tasks = vec![];
        for i in 0..32 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let org = if i % 2 == 0 {
                    "authority:410105"
                } else {
                    "authority:440106"
                };
                write(&app, org, &format!("t{i}")).await;
                // A cross-province change: both provinces' heads, taken in ascending order
                // whatever order the caller names them in.
                let a = chain_of(Some("41"), "transfer", &i.to_string());
                let c = chain_of(Some("44"), "transfer", &i.to_string());
                let pair = if i % 2 == 0 { [a, c] } else { [c, a] };
                let mut tx = app.db.begin().await.expect("begin");
                lock_chains(&mut tx, &pair).await.expect("lock");
                for chain in pair {
                    record_in(
                        &mut tx,
                        chain,
                        app.clock.now(),
                        &AuditActor::system("test"),
                        AuditEvent {
                            action: "test.cross",
                            entity_type: "transfer",
                            entity_id: i.to_string(),
                            before: None,
                            after: None,
                        },
                        None,
                    )
                    .await
                    .expect("record");
                }
                tx.commit().await.expect("commit");
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(
            verify(&app.db).await.expect("verify"),
            ChainCheck::Intact { rows: before + 96 },
            "{b:?}"
        );
        dispose(&app.db).await;
    }
}
