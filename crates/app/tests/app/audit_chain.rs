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
