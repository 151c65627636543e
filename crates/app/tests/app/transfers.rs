//! 跨省转学 / 省内转学 through the use cases, on every backend: the seed's whole procedure and
//! each refusal.

use chrono::NaiveDate;
use xueji_app::App;
use xueji_app::auth::CurrentUser;
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_app::transfers::{Evidence, NewTransfer, TransferDetail, TransferFilter};
use xueji_domain::ErrorCode;

use crate::{all, count, dispose, refused, user};

/// The first student of a school in a grade: (student_no, name).
async fn a_student(app: &App, school: &str, grade: &str) -> (String, String) {
    let u = user(app, &format!("{school}-admin")).await;
    let f = StudentFilter {
        grade: Some(grade.into()),
        ..Default::default()
    };
    let list = app.students(&u, &f, all()).await.expect("students");
    let s = list
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

fn application(
    from_province: &str,
    name: &str,
    student_ref: &str,
    grade: &str,
    class_id: i64,
) -> NewTransfer {
    NewTransfer {
        from_province: from_province.into(),
        student_name: name.into(),
        student_ref: student_ref.into(),
        to_grade: grade.into(),
        to_class_id: class_id,
        reason: "随父母工作调动迁居".into(),
    }
}

/// Files a cross-province transfer 河南 4101050001 → 广东 4401060001, grade 13.
async fn file_cross(app: &App) -> (TransferDetail, String) {
    let (no, name) = a_student(app, "4101050001", "13").await;
    let admin = user(app, "4401060001-admin").await;
    let class = class_of(app, &admin, "4401060001", "13").await;
    let t = app
        .file_transfer(
            &admin,
            &application("410000", &name, &no, "13", class),
            vec![],
        )
        .await
        .expect("file");
    (t, no)
}

async fn approve(app: &App, who: &str, id: i64) -> TransferDetail {
    let u = user(app, who).await;
    app.review_transfer(&u, id, true, "同意")
        .await
        .unwrap_or_else(|e| panic!("{who} approves: {e}"))
}

#[tokio::test]
async fn cross_province_transfer_end_to_end() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (t, no) = file_cross(&app).await;
        assert_eq!(t.kind, "cross_province");
        assert_eq!(t.status, "in_school_review");
        let steps: Vec<&str> = t.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            steps,
            ["in_school", "in_authority", "out_school", "out_authority"]
        );
        let parties: Vec<&str> = t.steps.iter().map(|s| s.party.as_str()).collect();
        assert_eq!(parties, ["4401060001", "440106", "4101050001", "410105"]);
        // Test clock: Monday 2026-11-02; ten working days counting that day end on Friday 11-13.
        assert_eq!(t.steps[0].due_date, NaiveDate::from_ymd_opt(2026, 11, 13));
        assert!(
            t.steps[1..]
                .iter()
                .all(|s| s.due_date.is_none() && s.state == "pending")
        );

        let t = approve(&app, "4401060001-reviewer", t.id).await;
        assert_eq!(t.status, "in_authority_review");
        let t = approve(&app, "edu440106", t.id).await;
        assert_eq!(t.status, "out_school_review");
        let t = approve(&app, "4101050001-reviewer", t.id).await;
        assert_eq!(t.status, "out_authority_review");
        let t = approve(&app, "edu410105", t.id).await;
        assert_eq!(t.status, "approved");
        assert!(
            t.steps
                .iter()
                .all(|s| s.decision.as_deref() == Some("approve") && s.actor.is_some())
        );

        // Until the pull the student is still at the sending school.
        let sender = user(&app, "4101050001-admin").await;
        assert_eq!(
            app.student(&sender, &no).await.unwrap().school.as_deref(),
            Some("4101050001")
        );

        let receiver = user(&app, "4401060001-admin").await;
        let t = app.pull_file(&receiver, t.id).await.expect("pull");
        assert_eq!(t.status, "file_pulled");
        assert_eq!(t.paper_file.due_date, NaiveDate::from_ymd_opt(2026, 12, 2));
        let s = app
            .student(&receiver, &no)
            .await
            .expect("receiver sees the student");
        assert_eq!(s.school.as_deref(), Some("4401060001"));
        assert_eq!(s.summary.class_id, Some(t.to_class_id));
        assert_eq!(s.summary.grade.as_deref(), Some("13"));
        assert!(
            s.id_number.is_some(),
            "the holding school sees the whole identity number"
        );
        assert_eq!(s.enrollments[0].status, "active");
        assert_eq!(s.enrollments[1].status, "transferred_out");
        // The sending school keeps a read-only 已转出 record, no longer in its roll.
        let old = app
            .student(&sender, &no)
            .await
            .expect("sending school keeps its record");
        assert_eq!(old.id_number, None);
        let roll = app
            .students(&sender, &StudentFilter::default(), all())
            .await
            .unwrap();
        assert!(roll.items.iter().all(|s| s.student_no != no));
        let notes = app.notifications(&sender, false, all()).await.unwrap();
        assert!(
            notes
                .items
                .iter()
                .any(|n| n.kind == "file_pulled" && n.transfer_id == Some(t.id))
        );

        let t = app
            .paper_file(&sender, t.id, true, Some("EMS"), "单号 1234")
            .await
            .expect("sent");
        assert_eq!(t.status, "paper_sent");
        assert_eq!(t.paper_file.method.as_deref(), Some("EMS"));
        let t = app
            .paper_file(&receiver, t.id, false, None, "已收到")
            .await
            .expect("received");
        assert_eq!(t.status, "completed");

        // Every action audited, chain intact.
        let n = count(&app.db, &format!("SELECT COUNT(*) FROM audit_log WHERE entity_type = 'transfer' AND entity_id = '{}'", t.id)).await;
        assert_eq!(n, 8, "file + 4 reviews + pull + sent + received");
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn one_authority_for_both_schools_approves_once() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (no, name) = a_student(&app, "4101050001", "14").await;
        let admin = user(&app, "4101050002-admin").await;
        let class = class_of(&app, &admin, "4101050002", "14").await;
        let t = app
            .file_transfer(
                &admin,
                &application("410000", &name, &no, "14", class),
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(t.kind, "intra_province");
        let steps: Vec<&str> = t.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps, ["in_school", "out_school", "shared_authority"]);
        approve(&app, "4101050002-reviewer", t.id).await;
        approve(&app, "4101050001-reviewer", t.id).await;
        let t = approve(&app, "edu410105", t.id).await;
        assert_eq!(t.status, "approved");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn intra_province_between_counties_has_four_steps() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (no, name) = a_student(&app, "4101020001", "12").await;
        let admin = user(&app, "4101050001-admin").await;
        let class = class_of(&app, &admin, "4101050001", "12").await;
        let t = app
            .file_transfer(
                &admin,
                &application("410000", &name, &no, "12", class),
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(t.kind, "intra_province");
        assert_eq!(t.steps.len(), 4);
        assert_eq!(t.steps[3].party, "410102");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn filing_refusals_have_their_codes() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (no, name) = a_student(&app, "4101050001", "13").await;
        let admin = user(&app, "4401060001-admin").await;
        let class = class_of(&app, &admin, "4401060001", "13").await;
        let ok = application("410000", &name, &no, "13", class);

        // Wrong sending province: the student is not found there.
        let r = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    from_province: "440000".into(),
                    ..ok.clone()
                },
                vec![],
            )
            .await;
        assert_eq!(refused(r), ErrorCode::NotFound);
        let r = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    student_name: "张冒名".into(),
                    ..ok.clone()
                },
                vec![],
            )
            .await;
        assert_eq!(refused(r), ErrorCode::NameMismatch);
        // A bad check digit in the identity number.
        let mut bad_id = no[1..].to_string();
        let last = bad_id.pop().unwrap();
        bad_id.push(if last == '1' { '2' } else { '1' });
        let r = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    student_ref: bad_id,
                    ..ok.clone()
                },
                vec![],
            )
            .await;
        assert_eq!(refused(r), ErrorCode::InvalidIdNumber);
        let r = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    reason: "  ".into(),
                    ..ok.clone()
                },
                vec![],
            )
            .await;
        assert_eq!(refused(r), ErrorCode::ReasonRequired);
        let r = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    to_grade: "99".into(),
                    ..ok.clone()
                },
                vec![],
            )
            .await;
        assert_eq!(refused(r), ErrorCode::ValidationFailed);
        let r = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    to_grade: "14".into(),
                    ..ok.clone()
                },
                vec![],
            )
            .await;
        assert_eq!(
            refused(r),
            ErrorCode::ValidationFailed,
            "class of another grade"
        );
        let r = app
            .file_transfer(
                &admin,
                &ok,
                vec![Evidence {
                    filename: "a.exe".into(),
                    bytes: b"MZ\x90\x00".to_vec(),
                }],
            )
            .await;
        assert_eq!(
            refused(r),
            ErrorCode::ValidationFailed,
            "evidence must be JPG/PNG/PDF"
        );
        // Only the receiving school's administrator files.
        let reviewer = user(&app, "4401060001-reviewer").await;
        assert_eq!(
            refused(app.file_transfer(&reviewer, &ok, vec![]).await),
            ErrorCode::Forbidden
        );
        let authority = user(&app, "edu440106").await;
        assert_eq!(
            refused(app.file_transfer(&authority, &ok, vec![]).await),
            ErrorCode::Forbidden
        );

        // By identity number (without the G) it works, with a PDF as evidence; nothing was
        // written by the refusals above.
        let pdf = Evidence {
            filename: "证明.pdf".into(),
            bytes: b"%PDF-1.4 test".to_vec(),
        };
        let t = app
            .file_transfer(
                &admin,
                &NewTransfer {
                    student_ref: no[1..].into(),
                    ..ok.clone()
                },
                vec![pdf],
            )
            .await
            .unwrap();
        assert_eq!(t.evidence.len(), 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM transfers").await, 1);
        // A second application for the same student: the business lock refuses it.
        let other = user(&app, "4403040001-admin").await;
        let class2 = class_of(&app, &other, "4403040001", "13").await;
        let r = app
            .file_transfer(
                &other,
                &application("410000", &name, &no, "13", class2),
                vec![],
            )
            .await;
        assert_eq!(refused(r), ErrorCode::TransferInProgress);
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn review_refusals_and_rejection() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (t, no) = file_cross(&app).await;
        // The filing administrator never reviews; the sending school waits its turn.
        let admin = user(&app, "4401060001-admin").await;
        assert_eq!(
            refused(app.review_transfer(&admin, t.id, true, "").await),
            ErrorCode::Forbidden
        );
        let sender_rev = user(&app, "4101050001-reviewer").await;
        assert_eq!(
            refused(app.review_transfer(&sender_rev, t.id, true, "").await),
            ErrorCode::NotYourTurn
        );
        let edu = user(&app, "edu410105").await;
        assert_eq!(
            refused(app.review_transfer(&edu, t.id, true, "").await),
            ErrorCode::NotYourTurn
        );
        // Outsiders do not learn that the transfer exists.
        let outsider = user(&app, "4403040001-reviewer").await;
        assert_eq!(
            refused(app.review_transfer(&outsider, t.id, true, "").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            refused(app.transfer(&outsider, t.id).await),
            ErrorCode::NotFound
        );
        let other_county = user(&app, "edu410102").await;
        assert_eq!(
            refused(app.transfer(&other_county, t.id).await),
            ErrorCode::NotFound
        );
        // Authorities above both schools see it.
        for who in ["edu410100", "edu410000", "edu440000", "moe"] {
            let u = user(&app, who).await;
            assert_eq!(app.transfer(&u, t.id).await.unwrap().id, t.id, "{who}");
        }
        approve(&app, "4401060001-reviewer", t.id).await;
        // The same office clicking again: the state moved on.
        let rev = user(&app, "4401060001-reviewer").await;
        assert_eq!(
            refused(app.review_transfer(&rev, t.id, true, "").await),
            ErrorCode::Conflict
        );
        // 不同意 needs an opinion, and ends the flow.
        let to_edu = user(&app, "edu440106").await;
        assert_eq!(
            refused(app.review_transfer(&to_edu, t.id, false, "  ").await),
            ErrorCode::ReasonRequired
        );
        let t = app
            .review_transfer(&to_edu, t.id, false, "学位已满")
            .await
            .unwrap();
        assert_eq!(t.status, "rejected");
        assert_eq!(t.steps[1].opinion.as_deref(), Some("学位已满"));
        assert_eq!(
            refused(app.review_transfer(&sender_rev, t.id, true, "").await),
            ErrorCode::Conflict
        );
        assert_eq!(
            refused(app.pull_file(&admin, t.id).await),
            ErrorCode::Conflict
        );
        // The student is unlocked: a new application goes through.
        let (t2, no2) = file_cross(&app).await;
        assert_eq!(no2, no, "the same student, free again");
        assert_ne!(t2.id, t.id);
        let notes = app.notifications(&admin, false, all()).await.unwrap();
        assert!(notes.items.iter().any(|n| n.kind == "rejected"));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn withdrawal_and_pull_rules() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (t, _) = file_cross(&app).await;
        let admin = user(&app, "4401060001-admin").await;
        let sender = user(&app, "4101050001-admin").await;
        assert_eq!(
            refused(app.pull_file(&admin, t.id).await),
            ErrorCode::Conflict,
            "no pull before approval"
        );
        assert_eq!(
            refused(app.withdraw_transfer(&admin, t.id, "").await),
            ErrorCode::ReasonRequired
        );
        assert_eq!(
            refused(app.withdraw_transfer(&sender, t.id, "不想转").await),
            ErrorCode::Forbidden
        );
        let t = app
            .withdraw_transfer(&admin, t.id, "家长改变主意")
            .await
            .unwrap();
        assert_eq!(t.status, "withdrawn");
        assert_eq!(t.withdraw_reason.as_deref(), Some("家长改变主意"));

        let (t, _) = file_cross(&app).await;
        for who in [
            "4401060001-reviewer",
            "edu440106",
            "4101050001-reviewer",
            "edu410105",
        ] {
            approve(&app, who, t.id).await;
        }
        assert_eq!(
            refused(app.withdraw_transfer(&admin, t.id, "晚了").await),
            ErrorCode::Conflict
        );
        assert_eq!(
            refused(app.pull_file(&sender, t.id).await),
            ErrorCode::Forbidden,
            "only the receiving school pulls"
        );
        assert_eq!(
            refused(app.paper_file(&sender, t.id, true, None, "").await),
            ErrorCode::Conflict,
            "paper only after the pull"
        );
        app.pull_file(&admin, t.id).await.unwrap();
        assert_eq!(
            refused(app.pull_file(&admin, t.id).await),
            ErrorCode::Conflict,
            "pulled once"
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn simultaneous_decisions_one_wins() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (t, _) = file_cross(&app).await;
        let rev = user(&app, "4401060001-reviewer").await;
        let (a, b) = tokio::join!(
            app.review_transfer(&rev, t.id, true, "同意"),
            app.review_transfer(&rev, t.id, false, "不同意")
        );
        let oks = [a.is_ok(), b.is_ok()].iter().filter(|x| **x).count();
        assert_eq!(oks, 1, "exactly one decision wins");
        let loser = if a.is_err() { a.err() } else { b.err() }.unwrap();
        assert_eq!(loser.code(), ErrorCode::Conflict);
        let decided = count(&app.db, &format!("SELECT COUNT(*) FROM transfer_steps WHERE transfer_id = {} AND decision IS NOT NULL", t.id)).await;
        assert_eq!(decided, 1);
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn work_lists_show_what_waits_for_each_party() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (t, _) = file_cross(&app).await;
        let todo = TransferFilter {
            todo: Some(true),
            ..Default::default()
        };
        let waiting = |who: &'static str| {
            let app = app.clone();
            let todo = todo.clone();
            async move {
                let u = user(&app, who).await;
                app.transfers(&u, &todo, all())
                    .await
                    .unwrap()
                    .items
                    .iter()
                    .map(|x| x.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(waiting("4401060001-reviewer").await, vec![t.id]);
        assert!(
            waiting("4401060001-admin").await.is_empty(),
            "the administrator does not review"
        );
        assert!(waiting("edu440106").await.is_empty());
        approve(&app, "4401060001-reviewer", t.id).await;
        assert_eq!(waiting("edu440106").await, vec![t.id]);
        assert!(waiting("4401060001-reviewer").await.is_empty());
        let u = user(&app, "edu440106").await;
        let row = &app.transfers(&u, &todo, all()).await.unwrap().items[0];
        assert_eq!(row.waiting_label.as_deref(), Some("待转入学籍主管部门审核"));
        assert_eq!(row.due_date, NaiveDate::from_ymd_opt(2026, 11, 13));
        // Query filters: by kind, by status, by name; outsiders list nothing.
        let sender = user(&app, "4101050001-admin").await;
        let by_kind = TransferFilter {
            kind: Some("cross_province".into()),
            ..Default::default()
        };
        assert_eq!(
            app.transfers(&sender, &by_kind, all()).await.unwrap().total,
            1
        );
        let by_kind = TransferFilter {
            kind: Some("intra_province".into()),
            ..Default::default()
        };
        assert_eq!(
            app.transfers(&sender, &by_kind, all()).await.unwrap().total,
            0
        );
        let by_status = TransferFilter {
            status: Some("in_authority_review".into()),
            ..Default::default()
        };
        assert_eq!(
            app.transfers(&sender, &by_status, all())
                .await
                .unwrap()
                .total,
            1
        );
        let bad = TransferFilter {
            status: Some("nonsense".into()),
            ..Default::default()
        };
        assert_eq!(
            refused(app.transfers(&sender, &bad, all()).await),
            ErrorCode::ValidationFailed
        );
        let outsider = user(&app, "4403040001-admin").await;
        assert_eq!(
            app.transfers(&outsider, &TransferFilter::default(), all())
                .await
                .unwrap()
                .total,
            0
        );
        let city = user(&app, "edu410100").await;
        assert_eq!(
            app.transfers(&city, &TransferFilter::default(), all())
                .await
                .unwrap()
                .total,
            1
        );
        dispose(&app.db).await;
    }
}

/// An action answers with the detail built from what it wrote, without reading it again: it must
/// be exactly what a fresh read shows the same user.
#[tokio::test]
async fn each_answer_is_what_a_fresh_read_shows() {
    async fn same(app: &App, u: &CurrentUser, answer: TransferDetail) -> TransferDetail {
        let read = app.transfer(u, answer.id).await.expect("read");
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::to_value(&read).unwrap(),
            "answer of {} differs from a fresh read",
            u.username
        );
        answer
    }
    for backend in backends() {
        let app = demo_app(backend).await;
        let admin = user(&app, "4401060001-admin").await;
        let sender = user(&app, "4101050001-admin").await;
        let (t, _) = file_cross(&app).await;
        let t = same(&app, &admin, t).await;
        for (who, opinion) in [
            ("4401060001-reviewer", "同意"),
            ("edu440106", ""),
            ("4101050001-reviewer", "同意转出"),
            ("edu410105", "同意"),
        ] {
            let u = user(&app, who).await;
            let a = app.review_transfer(&u, t.id, true, opinion).await.unwrap();
            same(&app, &u, a).await;
        }
        let a = app.pull_file(&admin, t.id).await.unwrap();
        same(&app, &admin, a).await;
        let a = app
            .paper_file(&sender, t.id, true, Some("EMS"), "单号 1234")
            .await
            .unwrap();
        same(&app, &sender, a).await;
        let a = app.paper_file(&admin, t.id, false, None, "").await.unwrap();
        assert_eq!(same(&app, &admin, a).await.status, "completed");

        let (t, _) = file_cross(&app).await;
        let a = app
            .withdraw_transfer(&admin, t.id, "家长改变主意")
            .await
            .unwrap();
        same(&app, &admin, a).await;

        let (t, _) = file_cross(&app).await;
        let rev = user(&app, "4401060001-reviewer").await;
        let a = app.review_transfer(&rev, t.id, true, "").await.unwrap();
        same(&app, &rev, a).await;
        let auth = user(&app, "edu440106").await;
        let a = app
            .review_transfer(&auth, t.id, false, "材料不全")
            .await
            .unwrap();
        assert_eq!(same(&app, &auth, a).await.status, "rejected");
        dispose(&app.db).await;
    }
}
