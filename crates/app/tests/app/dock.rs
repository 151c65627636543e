//! 对接 (docking) through the use cases, on every backend: signature checks, idempotency, the
//! outbox feed and its acknowledgement, complete cross-province transfers in both directions
//! with the docked province's steps taken by its system, and people refused those steps.

use xueji_app::App;
use xueji_app::auth::CurrentUser;
use xueji_app::dock::{
    self, DockCaller, DockDecisionIn, DockFilingIn, DockProvinceIn, DockRequest, Idem,
};
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_app::transfers::{NewTransfer, TransferDetail};
use xueji_domain::ErrorCode;

use crate::{all, count, dispose, refused, user};

/// The worked example of `docs/docking.md`: key seed bytes 0..31.
const EXAMPLE_SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const EXAMPLE_PUBLIC: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
const EXAMPLE_BODY: &str =
    r#"{"decision":"approve","step":"out_school","opinion":"同意","actor_name":"王老师"}"#;
const EXAMPLE_SIGNATURE: &str =
    "v98LFbe0KnwwJ4SZLVNpNRJ0P1HOIoq6RfL4TzDOiIvQ1ISLqrlFqzxoo3BVUGIgWakXzOc3V9uBIA7dNkgRAQ==";

#[test]
fn the_worked_example_of_the_documentation_holds() {
    let key = dock::key_from_secret_b64(EXAMPLE_SEED).expect("seed");
    assert_eq!(dock::public_b64(&key), EXAMPLE_PUBLIC);
    let base = dock::base_string(
        "POST",
        "/api/dock/v1/transfers/42/decisions",
        "1793581200",
        "110000",
        "bj-2026-000123",
        EXAMPLE_BODY.as_bytes(),
    );
    assert_eq!(
        base,
        "XUEJI-DOCK-V1\nPOST\n/api/dock/v1/transfers/42/decisions\n1793581200\n110000\nbj-2026-000123\n\
         258242f68a444c4b8735663d5f024a6e9c7738610bc8c9e5eafb00ee90ebe615"
    );
    assert_eq!(dock::sign_text(&key, &base), EXAMPLE_SIGNATURE);
    assert!(dock::verify_text(EXAMPLE_PUBLIC, &base, EXAMPLE_SIGNATURE));
    // The document shows the same figures a vendor checks their implementation against.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/docking.md"),
    )
    .expect("docs/docking.md");
    for v in [
        EXAMPLE_SEED,
        EXAMPLE_PUBLIC,
        EXAMPLE_BODY,
        EXAMPLE_SIGNATURE,
        "258242f68a444c4b8735663d5f024a6e9c7738610bc8c9e5eafb00ee90ebe615",
    ] {
        assert!(doc.contains(v), "docs/docking.md shows {v}");
    }
}

/// Docks 北京 (110000) with a fresh key; returns the key.
async fn dock_beijing(app: &App) -> dock::DockKey {
    let key = dock::new_key();
    let moe = user(app, "moe").await;
    let p = app
        .dock_province(
            &moe,
            "110000",
            &DockProvinceIn {
                public_key: dock::public_b64(&key),
            },
        )
        .await
        .expect("dock 110000");
    assert_eq!(p.name, "北京市");
    assert_eq!(p.backlog, 0);
    key
}

/// A signed request as the province's system would send it, verified by the hub.
async fn caller(app: &App, key: &dock::DockKey) -> DockCaller {
    let ts = app.clock.now().timestamp();
    let h = dock::sign_request(key, "110000", "GET", "/api/dock/v1/events", ts, None, b"");
    let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
    let (p, t, s) = (
        get(dock::HEADER_PROVINCE),
        get(dock::HEADER_TIMESTAMP),
        get(dock::HEADER_SIGNATURE),
    );
    app.dock_verify(&DockRequest {
        method: "GET",
        path_and_query: "/api/dock/v1/events",
        province: p.as_deref(),
        timestamp: t.as_deref(),
        signature: s.as_deref(),
        idem_key: None,
        body: b"",
    })
    .await
    .expect("a good signature is accepted")
}

async fn a_student(app: &App, school: &str, grade: &str) -> (String, String) {
    let u = user(app, &format!("{school}-admin")).await;
    let f = StudentFilter {
        grade: Some(grade.into()),
        ..Default::default()
    };
    let s = app
        .students(&u, &f, all())
        .await
        .expect("students")
        .items
        .into_iter()
        .find(|s| s.open_business.is_none())
        .expect("a student");
    (s.student_no, s.name)
}

async fn class_of(app: &App, u: &CurrentUser, school: &str, grade: &str) -> i64 {
    app.classes(u, school)
        .await
        .expect("classes")
        .into_iter()
        .find(|c| c.grade == grade)
        .expect("class")
        .id
}

fn decision(d: &str, step: Option<&str>) -> DockDecisionIn {
    DockDecisionIn {
        decision: d.into(),
        step: step.map(str::to_string),
        opinion: Some("同意".into()),
        method: None,
        actor_name: "王老师".into(),
    }
}

async fn approve(app: &App, who: &str, id: i64) -> TransferDetail {
    let u = user(app, who).await;
    app.review_transfer(&u, id, true, "同意")
        .await
        .unwrap_or_else(|e| panic!("{who} approves: {e}"))
}

#[tokio::test]
async fn signatures_are_checked_and_refusals_logged() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let key = dock_beijing(&app).await;
        let now = app.clock.now().timestamp();
        let body = br#"{"through":0}"#;
        let check = |key: dock::DockKey, province: &'static str, ts: i64, sent: &'static [u8]| {
            let app = app.clone();
            async move {
                let h = dock::sign_request(
                    &key,
                    province,
                    "POST",
                    "/api/dock/v1/events/ack",
                    ts,
                    Some("k-1"),
                    body,
                );
                let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
                let (p, t, s, i) = (
                    get(dock::HEADER_PROVINCE),
                    get(dock::HEADER_TIMESTAMP),
                    get(dock::HEADER_SIGNATURE),
                    get(dock::HEADER_IDEMPOTENCY),
                );
                app.dock_verify(&DockRequest {
                    method: "POST",
                    path_and_query: "/api/dock/v1/events/ack",
                    province: p.as_deref(),
                    timestamp: t.as_deref(),
                    signature: s.as_deref(),
                    idem_key: i.as_deref(),
                    body: sent,
                })
                .await
            }
        };
        let c = check(key.clone(), "110000", now, body)
            .await
            .expect("good signature");
        assert_eq!(c.province, "110000");
        assert_eq!(c.province_name, "北京市");
        // Within the window either way.
        check(key.clone(), "110000", now - 299, body)
            .await
            .expect("299 s old");
        // Replayed (or sent) outside the ±5 minute window.
        assert_eq!(
            refused(check(key.clone(), "110000", now - 301, body).await),
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            refused(check(key.clone(), "110000", now + 301, body).await),
            ErrorCode::Unauthenticated
        );
        // Another key: a forgery.
        assert_eq!(
            refused(check(dock::new_key(), "110000", now, body).await),
            ErrorCode::Unauthenticated
        );
        // A province that is not docked.
        assert_eq!(
            refused(check(key.clone(), "310000", now, body).await),
            ErrorCode::Unauthenticated
        );
        // The body changed after signing.
        assert_eq!(
            refused(check(key.clone(), "110000", now, br#"{"through":9}"#).await),
            ErrorCode::Unauthenticated
        );
        // Missing headers.
        assert_eq!(
            refused(
                app.dock_verify(&DockRequest {
                    method: "GET",
                    path_and_query: "/api/dock/v1/events",
                    province: Some("110000"),
                    timestamp: None,
                    signature: None,
                    idem_key: None,
                    body: b"",
                })
                .await
            ),
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM dock_messages WHERE status = 401 AND outcome LIKE 'refused:%'"
            )
            .await,
            6,
            "{backend:?}: every refusal is logged"
        );
        let moe = user(&app, "moe").await;
        let log = app.dock_messages(&moe, None, all()).await.unwrap();
        assert_eq!(log.total, 6);
        assert!(log.items.iter().any(|m| m.outcome.contains("时间戳")));
        let school = user(&app, "1101080001-admin").await;
        assert_eq!(
            refused(app.dock_messages(&school, None, all()).await),
            ErrorCode::Forbidden
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_answer() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let key = dock_beijing(&app).await;
        let c = caller(&app, &key).await;
        let req = |k: &'static str, body: &'static [u8]| DockRequest {
            method: "POST",
            path_and_query: "/api/dock/v1/events/ack",
            province: Some("110000"),
            timestamp: None,
            signature: None,
            idem_key: Some(k),
            body,
        };
        assert!(matches!(
            app.dock_idem_begin(&c, &req("a", b"{}")).await.unwrap(),
            Idem::Fresh
        ));
        // While the first runs, a repeat is told to wait.
        assert_eq!(
            refused(app.dock_idem_begin(&c, &req("a", b"{}")).await),
            ErrorCode::Conflict
        );
        app.dock_idem_finish(&c, "a", 200, r#"{"ok":1}"#)
            .await
            .unwrap();
        match app.dock_idem_begin(&c, &req("a", b"{}")).await.unwrap() {
            Idem::Replay { status, body } => {
                assert_eq!(status, 200);
                assert_eq!(body, r#"{"ok":1}"#);
            }
            Idem::Fresh => panic!("a repeat must not run again"),
        }
        // The same key for another message is a mistake of the sender.
        assert_eq!(
            refused(app.dock_idem_begin(&c, &req("a", b"{\"x\":1}")).await),
            ErrorCode::ValidationFailed
        );
        // No key at all.
        let mut r = req("a", b"{}");
        r.idem_key = None;
        assert_eq!(
            refused(app.dock_idem_begin(&c, &r).await),
            ErrorCode::ValidationFailed
        );
        dispose(&app.db).await;
    }
}

/// 北京 (docked) → 广东: 广东's people act in the national system, 北京's steps come through the
/// dock; the feed tells 北京 everything in order; people of 北京 are refused.
#[tokio::test]
async fn transfer_out_of_a_docked_province() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let key = dock_beijing(&app).await;
        let c = caller(&app, &key).await;
        let (no, name) = a_student(&app, "1101080001", "13").await;
        let admin = user(&app, "4401060001-admin").await;
        let class = class_of(&app, &admin, "4401060001", "13").await;
        let t = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    from_province: "110000".into(),
                    student_name: name.clone(),
                    student_ref: no.clone(),
                    to_grade: "13".into(),
                    to_class_id: class,
                    reason: "随父母工作调动迁居".into(),
                },
                vec![],
            )
            .await
            .expect("filing into 广东 is not docked");
        // The detail names who acts for 北京's steps.
        assert_eq!(t.steps[0].docked_system, None);
        assert_eq!(
            t.steps[2].docked_system.as_deref(),
            Some("北京市学籍系统（对接）")
        );
        assert_eq!(
            t.steps[3].docked_system.as_deref(),
            Some("北京市学籍系统（对接）")
        );
        assert_eq!(t.sending_system.as_deref(), Some("北京市学籍系统（对接）"));
        assert_eq!(t.receiving_system, None);
        // 北京 may not jump the queue.
        assert_eq!(
            refused(app.dock_decide(&c, t.id, &decision("approve", None)).await),
            ErrorCode::NotYourTurn
        );
        approve(&app, "4401060001-reviewer", t.id).await;
        let t = approve(&app, "edu440106", t.id).await;
        assert_eq!(t.status, "out_school_review");
        // The person of the docked school is refused and told who acts.
        let bj = user(&app, "1101080001-reviewer").await;
        let e = app
            .review_transfer(&bj, t.id, true, "同意")
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::DockedParty);
        assert!(e.to_domain().message.contains("北京市学籍系统"), "{e}");
        let edu = user(&app, "edu110108").await;
        assert_eq!(
            refused(app.review_transfer(&edu, t.id, false, "不同意").await),
            ErrorCode::DockedParty
        );
        // A decision for a step that is not the waiting one is a conflict.
        assert_eq!(
            refused(
                app.dock_decide(&c, t.id, &decision("approve", Some("out_authority")))
                    .await
            ),
            ErrorCode::Conflict
        );
        let t = app
            .dock_decide(&c, t.id, &decision("approve", Some("out_school")))
            .await
            .expect("北京's school step through the dock");
        assert_eq!(t.status, "out_authority_review");
        assert_eq!(
            t.steps[2].actor_name.as_deref(),
            Some("王老师（北京市学籍系统）")
        );
        let t = app
            .dock_decide(&c, t.id, &decision("approve", Some("out_authority")))
            .await
            .expect("北京's authority step through the dock");
        assert_eq!(t.status, "approved");
        // 广东 pulls the file; 北京's school sends the paper file through the dock.
        let t = app.pull_file(&admin, t.id).await.expect("pull");
        assert_eq!(t.status, "file_pulled");
        let bj_admin = user(&app, "1101080001-admin").await;
        assert_eq!(
            refused(app.paper_file(&bj_admin, t.id, true, Some("EMS"), "").await),
            ErrorCode::DockedParty
        );
        let mut sent = decision("paper_sent", None);
        sent.method = Some("EMS".into());
        let t = app.dock_decide(&c, t.id, &sent).await.expect("paper sent");
        assert_eq!(t.paper_file.method.as_deref(), Some("EMS"));
        let t = app
            .paper_file(&admin, t.id, false, None, "已收到")
            .await
            .expect("received");
        assert_eq!(t.status, "completed");

        // The feed: every change, numbered 1.., in order, with 北京's turns marked.
        let feed = app.dock_events(&c, Some(0), None).await.unwrap();
        let kinds: Vec<(i64, &str, bool)> = feed
            .events
            .iter()
            .map(|e| (e.seq, e.kind.as_str(), e.data["your_turn"] == true))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, "filed", false),
                (2, "decided", false),
                (3, "decided", true),
                (4, "decided", true),
                (5, "decided", false),
                (6, "file_pulled", true),
                (7, "paper_sent", false),
                (8, "paper_received", false),
            ],
            "{backend:?}"
        );
        assert!(feed.events.iter().all(|e| e.transfer_id == t.id));
        assert_eq!(feed.events[3].data["last_decision"]["step"], "out_school");
        assert_eq!(feed.events[3].data["waiting"]["party"], "110108");
        assert_eq!(feed.next_after, 8);
        assert!(!feed.more);
        // Paging and acknowledgement: kept until acknowledged, read on from the acknowledged point.
        let page = app.dock_events(&c, Some(0), Some(3)).await.unwrap();
        assert_eq!(page.events.len(), 3);
        assert!(page.more);
        assert_eq!(page.next_after, 3);
        let ack = app.dock_ack(&c, 5).await.unwrap();
        assert_eq!((ack.acked_through, ack.last_seq), (5, 8));
        let rest = app.dock_events(&c, None, None).await.unwrap();
        assert_eq!(
            rest.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [6, 7, 8]
        );
        // Never backwards, never beyond the last event.
        assert_eq!(app.dock_ack(&c, 2).await.unwrap().acked_through, 5);
        assert_eq!(
            refused(app.dock_ack(&c, 9).await),
            ErrorCode::ValidationFailed
        );
        let moe = user(&app, "moe").await;
        let p = &app.docked_provinces(&moe).await.unwrap()[0];
        assert_eq!((p.backlog, p.acked_through, p.last_seq), (3, 5, 8));
        assert!(p.oldest_unacked_at.is_some() && p.last_fetch_at.is_some());
        // The sending province gets no electronic file: the receiving one does.
        assert_eq!(
            refused(app.dock_file_document(&c, t.id, &plain_get()).await),
            ErrorCode::Forbidden
        );
        // Docking is audited.
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'dock.province'"
            )
            .await,
            1
        );
        dispose(&app.db).await;
    }
}

fn plain_get() -> DockRequest<'static> {
    DockRequest {
        method: "GET",
        path_and_query: "/api/dock/v1/transfers/0/file",
        province: None,
        timestamp: None,
        signature: None,
        idem_key: None,
        body: b"",
    }
}

/// 河南 → 北京 (docked): 北京's system files, decides its steps and pulls the signed file.
#[tokio::test]
async fn transfer_into_a_docked_province() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let key = dock_beijing(&app).await;
        let c = caller(&app, &key).await;
        let (no, name) = a_student(&app, "4101050001", "13").await;
        let bj_admin = user(&app, "1101080001-admin").await;
        let class = class_of(&app, &bj_admin, "1101080001", "13").await;
        let new = NewTransfer {
            from_province: "410000".into(),
            student_name: name.clone(),
            student_ref: no.clone(),
            to_grade: "13".into(),
            to_class_id: class,
            reason: "随父母工作调动迁居".into(),
        };
        // People of the docked school cannot file in the national system.
        assert_eq!(
            refused(app.file_transfer(&bj_admin, &new, vec![]).await),
            ErrorCode::DockedParty
        );
        let filing = DockFilingIn {
            to_school: "1101080001".into(),
            from_province: new.from_province.clone(),
            student_name: new.student_name.clone(),
            student_ref: new.student_ref.clone(),
            to_grade: new.to_grade.clone(),
            to_class_id: new.to_class_id,
            reason: new.reason.clone(),
            actor_name: "李老师".into(),
        };
        // Only into its own schools.
        let mut elsewhere = filing.clone();
        elsewhere.to_school = "4401060001".into();
        assert_eq!(
            refused(app.dock_file(&c, &elsewhere).await),
            ErrorCode::NotFound
        );
        let t = app.dock_file(&c, &filing).await.expect("filed by the dock");
        assert_eq!(t.status, "in_school_review");
        assert_eq!(t.to_school, "1101080001");
        let bj_rev = user(&app, "1101080001-reviewer").await;
        assert_eq!(
            refused(app.review_transfer(&bj_rev, t.id, true, "同意").await),
            ErrorCode::DockedParty
        );
        app.dock_decide(&c, t.id, &decision("approve", Some("in_school")))
            .await
            .expect("in_school");
        let t = app
            .dock_decide(&c, t.id, &decision("approve", Some("in_authority")))
            .await
            .expect("in_authority");
        assert_eq!(t.status, "out_school_review");
        // 河南's steps are not 北京's to take.
        assert_eq!(
            refused(app.dock_decide(&c, t.id, &decision("approve", None)).await),
            ErrorCode::NotYourTurn
        );
        approve(&app, "4101050001-reviewer", t.id).await;
        // Before approval ends there is no file to exchange.
        assert_eq!(
            refused(app.dock_file_document(&c, t.id, &plain_get()).await),
            ErrorCode::Conflict
        );
        let t = approve(&app, "edu410105", t.id).await;
        assert_eq!(t.status, "approved");
        // The receiving school's 调档 belongs to the dock too.
        assert_eq!(
            refused(app.pull_file(&bj_admin, t.id).await),
            ErrorCode::DockedParty
        );
        let doc = app
            .dock_file_document(&c, t.id, &plain_get())
            .await
            .expect("signed file");
        let hub = app.dock_hub_key().await.unwrap();
        assert_eq!(doc.public_key, dock::public_b64(&hub));
        assert!(dock::verify_text(
            &doc.public_key,
            &doc.document,
            &doc.signature
        ));
        assert!(!dock::verify_text(
            &doc.public_key,
            &doc.document.replace(&name, "某某"),
            &doc.signature
        ));
        let v: serde_json::Value = serde_json::from_str(&doc.document).unwrap();
        assert_eq!(v["archive"]["student_no"], no.as_str());
        assert_eq!(v["transfer_id"], t.id);
        let t = app
            .dock_decide(&c, t.id, &decision("pull_file", None))
            .await
            .expect("pull through the dock");
        assert_eq!(t.status, "file_pulled");
        let henan = user(&app, "4101050001-admin").await;
        let t = app
            .paper_file(&henan, t.id, true, Some("EMS"), "")
            .await
            .expect("sent by 河南");
        let t = app
            .dock_decide(&c, t.id, &decision("paper_received", None))
            .await
            .expect("received through the dock");
        assert_eq!(t.status, "completed");
        // The student now belongs to the 北京 school.
        let s = app.student(&bj_admin, &no).await.expect("student");
        assert_eq!(s.school.as_deref(), Some("1101080001"));
        // A withdrawal after approval is the state machine's conflict, not a second effect.
        assert_eq!(
            refused(app.dock_decide(&c, t.id, &decision("withdraw", None)).await),
            ErrorCode::Conflict
        );
        let feed = app.dock_events(&c, Some(0), None).await.unwrap();
        let seqs: Vec<i64> = feed.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<i64>>());
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM dock_messages WHERE direction = 'sent'"
            )
            .await,
            1,
            "the signed document is logged as sent"
        );
        dispose(&app.db).await;
    }
}

/// Operations: a province whose system stops reading its feed while events wait is flagged after
/// `XUEJI_DOCK_ALERT_MINUTES` (default 10), and the flag clears once it reads again.
#[tokio::test]
async fn a_silent_province_is_flagged() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let key = dock_beijing(&app).await;
        let moe = user(&app, "moe").await;
        let flagged = |app: App| async move {
            let moe = user(&app, "moe").await;
            app.docked_provinces(&moe).await.unwrap()[0].fetch_overdue
        };
        // Nothing waiting: no alert, however long the silence.
        app.clock.set(app.clock.now() + chrono::Duration::hours(1));
        assert!(!flagged(app.clone()).await);
        let (no, name) = a_student(&app, "1101080001", "13").await;
        let admin = user(&app, "4401060001-admin").await;
        let class = class_of(&app, &admin, "4401060001", "13").await;
        app.file_transfer(
            &admin,
            &NewTransfer {
                from_province: "110000".into(),
                student_name: name,
                student_ref: no,
                to_grade: "13".into(),
                to_class_id: class,
                reason: "随父母工作调动迁居".into(),
            },
            vec![],
        )
        .await
        .unwrap();
        // Events wait and the system has never read: flagged.
        assert!(flagged(app.clone()).await);
        assert_eq!(app.dock_overdue().await.unwrap().len(), 1);
        // It reads: the flag clears; silent again for 11 minutes: flagged again.
        let c = caller(&app, &key).await;
        app.dock_events(&c, None, None).await.unwrap();
        assert!(!flagged(app.clone()).await);
        app.clock
            .set(app.clock.now() + chrono::Duration::minutes(11));
        assert!(flagged(app.clone()).await);
        // Acknowledged: nothing waits, no alert.
        app.dock_ack(&c, 1).await.unwrap();
        assert!(!app.docked_provinces(&moe).await.unwrap()[0].fetch_overdue);
        dispose(&app.db).await;
    }
}

/// Concurrent changes: the feed's numbers stay contiguous, one event per committed change, in
/// commit order per transfer (the sequence is taken under the province row's lock).
#[tokio::test]
async fn concurrent_changes_give_a_gapless_feed() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let key = dock_beijing(&app).await;
        let c = caller(&app, &key).await;
        let admin = user(&app, "4401060001-admin").await;
        let bj = user(&app, "edu110108").await;
        let f = StudentFilter {
            school: Some("1101080001".into()),
            ..Default::default()
        };
        let students = app.students(&bj, &f, all()).await.unwrap().items;
        let classes = app.classes(&admin, "4401060001").await.unwrap();
        let mut tasks = vec![];
        for s in students.into_iter().take(24) {
            let Some(class) = classes.iter().find(|k| Some(&k.grade) == s.grade.as_ref()) else {
                continue;
            };
            let (app, admin, class) = (app.clone(), admin.clone(), class.id);
            tasks.push(tokio::spawn(async move {
                let t = app
                    .file_transfer(
                        &admin,
                        &NewTransfer {
                            from_province: "110000".into(),
                            student_name: s.name.clone(),
                            student_ref: s.student_no.clone(),
                            to_grade: s.grade.clone().unwrap(),
                            to_class_id: class,
                            reason: "随父母工作调动迁居".into(),
                        },
                        vec![],
                    )
                    .await
                    .expect("filed");
                let rev = user(&app, "4401060001-reviewer").await;
                app.review_transfer(&rev, t.id, true, "同意")
                    .await
                    .expect("approved");
                t.id
            }));
        }
        let mut ids = vec![];
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        assert!(ids.len() >= 12, "{backend:?}: enough concurrent transfers");
        let feed = app.dock_events(&c, Some(0), Some(1000)).await.unwrap();
        let seqs: Vec<i64> = feed.events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=(2 * ids.len() as i64)).collect::<Vec<_>>(),
            "{backend:?}"
        );
        for id in ids {
            let kinds: Vec<&str> = feed
                .events
                .iter()
                .filter(|e| e.transfer_id == id)
                .map(|e| e.kind.as_str())
                .collect();
            assert_eq!(kinds, ["filed", "decided"], "{backend:?}: transfer {id}");
        }
        dispose(&app.db).await;
    }
}

/// One text scalar.
async fn text(db: &xueji_app::Db, sql: &str) -> String {
    xueji_app::on_pool!(db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Removes a student from a database entirely (a node that never held them).
async fn forget_student(db: &xueji_app::Db, no: &str) {
    let id = count(
        db,
        &format!("SELECT student_id FROM student_numbers WHERE student_no = '{no}'"),
    )
    .await;
    for t in [
        "identity_checks",
        "problem_records",
        "open_businesses",
        "enrollments",
        "student_numbers",
    ] {
        crate::exec(db, &format!("DELETE FROM {t} WHERE student_id = {id}"))
            .await
            .unwrap_or_else(|e| panic!("{t}: {e}"));
    }
    crate::exec(db, &format!("DELETE FROM students WHERE id = {id}"))
        .await
        .unwrap();
}

/// The provincial node's own roll follows the hub: the feed queues a roll change for each
/// transfer pulled into or out of 北京 (in the transaction that stores the page and cursor);
/// out → 已转出 at no school of the node, in → enrolled from the hub's signed file in the
/// hub's school, grade and class (by name), whether the node held the person before or not.
/// Forged or foreign files are refused and the change waits; a withdrawn application changes
/// nothing; the same events again and the same changes again apply nothing twice.
#[tokio::test]
async fn the_node_roll_follows_pulled_transfers_once() {
    for backend in backends() {
        let hub = demo_app(backend).await;
        let node = demo_app(backend).await;
        node.node_init("110000", "http://hub.invalid")
            .await
            .unwrap();
        let key = dock_beijing(&hub).await;
        let c = caller(&hub, &key).await;
        let hub_key = dock::public_b64(&hub.dock_hub_key().await.unwrap());

        // Out: 北京 → 广东, 北京's steps through the dock, 广东 pulls.
        let (out_no, out_name) = a_student(&hub, "1101080001", "13").await;
        let gd = user(&hub, "4401060001-admin").await;
        let gd_class = class_of(&hub, &gd, "4401060001", "13").await;
        let t_out = hub
            .file_transfer(
                &gd,
                &NewTransfer {
                    from_province: "110000".into(),
                    student_name: out_name,
                    student_ref: out_no.clone(),
                    to_grade: "13".into(),
                    to_class_id: gd_class,
                    reason: "随父母工作调动迁居".into(),
                },
                vec![],
            )
            .await
            .unwrap()
            .id;
        approve(&hub, "4401060001-reviewer", t_out).await;
        approve(&hub, "edu440106", t_out).await;
        for step in ["out_school", "out_authority"] {
            hub.dock_decide(&c, t_out, &decision("approve", Some(step)))
                .await
                .unwrap();
        }
        hub.pull_file(&gd, t_out).await.expect("pulled by 广东");

        // In: two 河南 → 北京 filed and pulled by 北京's system; a third withdrawn.
        let bj_admin = user(&hub, "1101080001-admin").await;
        let bj_class = class_of(&hub, &bj_admin, "1101080001", "13").await;
        let filing = |no: &str, name: &str| DockFilingIn {
            to_school: "1101080001".into(),
            from_province: "410000".into(),
            student_name: name.into(),
            student_ref: no.into(),
            to_grade: "13".into(),
            to_class_id: bj_class,
            reason: "随父母工作调动迁居".into(),
            actor_name: "李老师".into(),
        };
        let mut ins = vec![];
        for _ in 0..2 {
            let (no, name) = a_student(&hub, "4101050001", "13").await;
            let t = hub.dock_file(&c, &filing(&no, &name)).await.unwrap().id;
            for step in ["in_school", "in_authority"] {
                hub.dock_decide(&c, t, &decision("approve", Some(step)))
                    .await
                    .unwrap();
            }
            approve(&hub, "4101050001-reviewer", t).await;
            approve(&hub, "edu410105", t).await;
            hub.dock_decide(&c, t, &decision("pull_file", None))
                .await
                .expect("pulled by 北京's system");
            ins.push((t, no));
        }
        let (w_no, w_name) = a_student(&hub, "4101050001", "13").await;
        let w = hub.dock_file(&c, &filing(&w_no, &w_name)).await.unwrap().id;
        hub.dock_decide(&c, w, &decision("withdraw", None))
            .await
            .unwrap();
        // The node never held the second incoming student (a real node holds its province only).
        forget_student(&node.db, &ins[1].1).await;

        let feed = hub.dock_events(&c, Some(0), Some(1000)).await.unwrap();
        node.node_store_events(&feed.events, feed.next_after)
            .await
            .unwrap();
        let pending = node.node_roll_pending().await.unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|t| (t.transfer_id, t.direction.as_str()))
                .collect::<Vec<_>>(),
            [(t_out, "out"), (ins[0].0, "in"), (ins[1].0, "in")],
            "{backend:?}: one change per pulled transfer, none for the withdrawn one"
        );
        // A tampered file, another transfer's file, a file without one: refused, still pending.
        let mut forged = hub
            .dock_file_document(&c, ins[0].0, &plain_get())
            .await
            .unwrap();
        forged.document = forged.document.replace("\"13\"", "\"14\"");
        assert!(
            node.node_roll_apply(&pending[1], Some(&forged), Some(&hub_key))
                .await
                .is_err()
        );
        let foreign = hub
            .dock_file_document(&c, ins[1].0, &plain_get())
            .await
            .unwrap();
        assert!(
            node.node_roll_apply(&pending[1], Some(&foreign), Some(&hub_key))
                .await
                .is_err()
        );
        assert!(
            node.node_roll_apply(&pending[1], None, Some(&hub_key))
                .await
                .is_err()
        );
        assert_eq!(node.node_roll_pending().await.unwrap().len(), 3);
        let apply_all = || async {
            let mut outcomes = vec![];
            for task in &pending {
                let file = if task.direction == "in" {
                    Some(
                        hub.dock_file_document(&c, task.transfer_id, &plain_get())
                            .await
                            .unwrap(),
                    )
                } else {
                    None
                };
                outcomes.push(
                    node.node_roll_apply(task, file.as_ref(), Some(&hub_key))
                        .await
                        .expect("applied"),
                );
            }
            outcomes
        };
        let first = apply_all().await;
        assert!(first[0].starts_with("已转出"), "{first:?}");
        assert!(first[1].contains("原有记录已转移"), "{first:?}");
        assert!(first[2].starts_with("已转入"), "{first:?}");
        // The same events late, the same changes again: nothing more.
        node.node_store_events(&feed.events, feed.next_after)
            .await
            .unwrap();
        assert!(node.node_roll_pending().await.unwrap().is_empty());
        assert_eq!(
            apply_all().await,
            ["already applied", "already applied", "already applied"]
        );
        assert!(
            node.node_roll()
                .await
                .unwrap()
                .iter()
                .all(|t| t.state == "applied")
        );
        assert_eq!(
            count(
                &node.db,
                "SELECT COUNT(*) FROM audit_log WHERE action IN ('node.roll_in', 'node.roll_out')"
            )
            .await,
            3
        );
        assert_eq!(
            xueji_app::audit::verify(&node.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact {
                rows: count(&node.db, "SELECT COUNT(*) FROM audit_log").await as u64
            }
        );

        // The roll: out — at no school of the node, 已转出, the old school keeps the ended row.
        let moe = user(&node, "moe").await;
        let s = node.student(&moe, &out_no).await.unwrap();
        assert_eq!(s.summary.status, "transferred_out");
        assert_eq!(s.school, None);
        let last = &s.enrollments[0];
        assert_eq!(
            (last.school.as_str(), last.status.as_str(), last.transfer_id),
            ("1101080001", "transferred_out", Some(t_out))
        );
        assert!(last.ended_at.is_some());
        let bj_node = user(&node, "1101080001-admin").await;
        let at_bj = node
            .students(&bj_node, &StudentFilter::default(), all())
            .await
            .unwrap()
            .items;
        assert!(!at_bj.iter().any(|x| x.student_no == out_no));
        // In — at the 北京 school only, in the hub's grade and class, with the whole identity.
        let hub_moe = user(&hub, "moe").await;
        for (t, no) in &ins {
            let there = hub.student(&hub_moe, no).await.unwrap();
            let here = node.student(&moe, no).await.unwrap();
            assert_eq!(here.school.as_deref(), Some("1101080001"), "{backend:?}");
            assert_eq!(
                (
                    &here.summary.name,
                    &here.summary.grade,
                    &here.summary.class_name,
                    here.summary.status.as_str()
                ),
                (
                    &there.summary.name,
                    &there.summary.grade,
                    &there.summary.class_name,
                    "enrolled"
                )
            );
            assert!(here.summary.class_name.is_some());
            assert_eq!(here.enrollments[0].transfer_id, Some(*t));
            assert!(at_bj.iter().any(|x| &x.student_no == no));
            let whose =
                format!("(SELECT student_id FROM student_numbers WHERE student_no = '{no}')");
            assert_eq!(
                count(
                    &node.db,
                    &format!(
                        "SELECT COUNT(*) FROM enrollments WHERE ended_at IS NULL AND student_id = {whose}"
                    )
                )
                .await,
                1,
                "exactly one school"
            );
            let id_sql = format!("SELECT id_number FROM students WHERE id = {whose}");
            assert_eq!(text(&node.db, &id_sql).await, text(&hub.db, &id_sql).await);
        }
        // The hub: the same action again under a new key (an answer lost in a crash) is already
        // done — answered with the transfer as it is, nothing changes.
        let v = hub.transfer(&hub_moe, t_out).await.unwrap().version;
        for (id, d) in [
            (t_out, decision("approve", Some("out_school"))),
            (ins[0].0, decision("pull_file", None)),
            (w, decision("withdraw", None)),
        ] {
            hub.dock_decide(&c, id, &d).await.expect("already done");
        }
        assert_eq!(hub.transfer(&hub_moe, t_out).await.unwrap().version, v);
        assert_eq!(
            refused(
                hub.dock_decide(&c, t_out, &decision("reject", Some("out_school")))
                    .await
            ),
            ErrorCode::Conflict,
            "the other decision of a decided step is still refused"
        );
        // The 河南 school on the node no longer lists the first; the withdrawn one stays there.
        let hn_node = user(&node, "4101050001-admin").await;
        let at_hn = node
            .students(&hn_node, &StudentFilter::default(), all())
            .await
            .unwrap()
            .items;
        assert!(!at_hn.iter().any(|x| x.student_no == ins[0].1));
        assert!(at_hn.iter().any(|x| x.student_no == w_no));
        dispose(&hub.db).await;
        dispose(&node.db).await;
    }
}

/// Verifies a GET signed by `key` now; the refusal's code if refused.
async fn signed_by(app: &App, key: &dock::DockKey) -> Result<(), ErrorCode> {
    let ts = app.clock.now().timestamp();
    let h = dock::sign_request(key, "110000", "GET", "/api/dock/v1/events", ts, None, b"");
    let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
    let (p, t, s) = (
        get(dock::HEADER_PROVINCE),
        get(dock::HEADER_TIMESTAMP),
        get(dock::HEADER_SIGNATURE),
    );
    app.dock_verify(&DockRequest {
        method: "GET",
        path_and_query: "/api/dock/v1/events",
        province: p.as_deref(),
        timestamp: t.as_deref(),
        signature: s.as_deref(),
        idem_key: None,
        body: b"",
    })
    .await
    .map(|_| ())
    .map_err(|e| e.code())
}

/// Key rotation: the new key is accepted at once, the replaced one for the overlap window (24 h
/// by default) and refused after it; each registration audited with the window's end.
#[tokio::test]
async fn a_rotated_key_overlaps_for_a_day() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let old = dock_beijing(&app).await;
        let new = dock::new_key();
        let moe = user(&app, "moe").await;
        app.dock_province(
            &moe,
            "110000",
            &DockProvinceIn {
                public_key: dock::public_b64(&new),
            },
        )
        .await
        .expect("rotated");
        assert_eq!(signed_by(&app, &new).await, Ok(()));
        assert_eq!(signed_by(&app, &old).await, Ok(()), "within the overlap");
        assert_eq!(
            signed_by(&app, &dock::new_key()).await,
            Err(ErrorCode::Unauthenticated)
        );
        app.clock.set(app.clock.now() + chrono::Duration::hours(23));
        assert_eq!(signed_by(&app, &old).await, Ok(()));
        app.clock.set(app.clock.now() + chrono::Duration::hours(2));
        assert_eq!(
            signed_by(&app, &old).await,
            Err(ErrorCode::Unauthenticated),
            "after the overlap"
        );
        assert_eq!(signed_by(&app, &new).await, Ok(()));
        // Registering the same key again opens no window for anything else.
        app.dock_province(
            &moe,
            "110000",
            &DockProvinceIn {
                public_key: dock::public_b64(&new),
            },
        )
        .await
        .unwrap();
        assert_eq!(signed_by(&app, &old).await, Err(ErrorCode::Unauthenticated));
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'dock.province' \
                 AND after_json LIKE '%previous_key_valid_until\":\"%'"
            )
            .await,
            1,
            "the rotation is audited with the window's end"
        );
        dispose(&app.db).await;
    }
}

/// The message log is kept at least 180 days; older entries can be pruned, audited.
#[tokio::test]
async fn the_message_log_is_kept_180_days_then_prunable() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let key = dock_beijing(&app).await;
        for _ in 0..3 {
            assert_eq!(
                signed_by(&app, &dock::new_key()).await,
                Err(ErrorCode::Unauthenticated)
            );
        }
        let old = count(&app.db, "SELECT COUNT(*) FROM dock_messages").await;
        assert_eq!(old, 3);
        app.clock.set(app.clock.now() + chrono::Duration::days(181));
        assert_eq!(
            signed_by(&app, &dock::new_key()).await,
            Err(ErrorCode::Unauthenticated)
        );
        assert_eq!(signed_by(&app, &key).await, Ok(()));
        assert_eq!(
            refused(app.dock_prune_messages(179).await),
            ErrorCode::ValidationFailed
        );
        assert_eq!(app.dock_prune_messages(365).await.unwrap(), 0);
        assert_eq!(app.dock_prune_messages(180).await.unwrap(), 3);
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM dock_messages").await,
            1,
            "the recent refusal stays"
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'dock.messages_prune'"
            )
            .await,
            1
        );
        dispose(&app.db).await;
    }
}
