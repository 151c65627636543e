//! Provincial policy (Art. 11), deadlines oversight, stale cases and the parents' query, on every
//! backend, with a controllable clock.

use chrono::{NaiveDate, TimeZone, Utc};
use xueji_app::App;
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_app::transfers::{NewTransfer, TransferDetail, TransferFilter};
use xueji_domain::ErrorCode;
use xueji_domain::policy::{ClosedGrade, Direction, Freeze, Level, OverdueAction, Policy, Term};

use crate::{all, dispose, refused, user};

/// Sets the test clock to 09:00 Beijing time on a date.
fn at(app: &App, y: i32, m: u32, d: u32) {
    app.clock
        .set(Utc.with_ymd_and_hms(y, m, d, 1, 0, 0).single().unwrap());
}

fn date(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

/// Files 河南 `from` (grade 13) → 广东 `to`; `nth` picks a different student each time.
async fn file(
    app: &App,
    from: &str,
    to: &str,
    nth: usize,
) -> Result<TransferDetail, xueji_app::AppError> {
    let sender = user(app, &format!("{from}-admin")).await;
    let f = StudentFilter {
        grade: Some("13".into()),
        ..Default::default()
    };
    let s = app
        .students(&sender, &f, all())
        .await
        .unwrap()
        .items
        .into_iter()
        .nth(nth)
        .expect("student");
    let admin = user(app, &format!("{to}-admin")).await;
    let class = app
        .classes(&admin, to)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.grade == "13")
        .unwrap()
        .id;
    let req = NewTransfer {
        from_province: "410000".into(),
        student_name: s.name,
        student_ref: s.student_no,
        to_grade: "13".into(),
        to_class_id: class,
        reason: "随迁".into(),
    };
    app.file_transfer(&admin, &req, vec![]).await
}

async fn approve(app: &App, who: &str, id: i64) -> TransferDetail {
    let u = user(app, who).await;
    app.review_transfer(&u, id, true, "同意")
        .await
        .unwrap_or_else(|e| panic!("{who}: {e}"))
}

#[tokio::test]
async fn policies_are_versioned_pinned_and_applied_per_side() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let gd = user(&app, "edu440000").await;
        let freeze = Policy {
            freezes: vec![Freeze {
                start: "11-01".into(),
                end: "11-05".into(),
                direction: Direction::In,
                kinds: vec![],
                name: "秋季停办".into(),
            }],
            ..Policy::default()
        };
        // Only the province's own authority edits its policy.
        assert_eq!(
            refused(
                app.set_policy(&user(&app, "edu410000").await, "440000", freeze.clone(), "")
                    .await
            ),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(
                app.set_policy(&user(&app, "edu440106").await, "440000", freeze.clone(), "")
                    .await
            ),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(
                app.set_policy(
                    &user(&app, "4401060001-admin").await,
                    "440000",
                    freeze.clone(),
                    ""
                )
                .await
            ),
            ErrorCode::Forbidden
        );
        let bad = Policy {
            deadline_days: 0,
            ..Policy::default()
        };
        assert_eq!(
            refused(app.set_policy(&gd, "440000", bad, "").await),
            ErrorCode::ValidationFailed
        );
        let v1 = app
            .set_policy(&gd, "440000", freeze, "秋季停办")
            .await
            .unwrap();
        assert_eq!(v1.version, 1);
        // The receiving province's freeze refuses the application and names the rule.
        let e = file(&app, "4101050001", "4401060001", 0)
            .await
            .unwrap_err()
            .to_domain();
        assert_eq!(e.code, ErrorCode::PolicyViolation);
        assert!(
            e.message.contains("广东省") && e.message.contains("秋季停办"),
            "{}",
            e.message
        );
        // A transfer the other way is not frozen (direction In only, for 广东's incoming side).
        // Version 2: no freeze, but a city and a province level on 广东's side.
        let levels = Policy {
            extra_levels: vec![Level::City, Level::Province],
            ..Policy::default()
        };
        assert_eq!(
            app.set_policy(&gd, "440000", levels, "增加市级、省级审核")
                .await
                .unwrap()
                .version,
            2
        );
        let t = file(&app, "4101050001", "4401060001", 0).await.unwrap();
        assert_eq!((t.to_policy_version, t.from_policy_version), (2, 0));
        let parties: Vec<&str> = t.steps.iter().map(|s| s.party.as_str()).collect();
        assert_eq!(
            parties,
            [
                "4401060001",
                "440106",
                "440100",
                "440000",
                "4101050001",
                "410105"
            ]
        );
        // A later version does not change a filed transfer.
        app.set_policy(&gd, "440000", Policy::default(), "恢复默认")
            .await
            .unwrap();
        let again = app
            .transfer(&user(&app, "4401060001-admin").await, t.id)
            .await
            .unwrap();
        assert_eq!(again.steps.len(), 6);
        assert_eq!(again.to_policy_version, 2);
        assert_eq!(app.policy_history("440000").await.unwrap().len(), 3);
        // The sending province's closed grade applies to its outgoing side.
        let henan = user(&app, "edu410000").await;
        let closed = Policy {
            closed_grades: vec![ClosedGrade {
                grade: "13".into(),
                term: Term::First,
                direction: Direction::Out,
                name: String::new(),
            }],
            ..Policy::default()
        };
        app.set_policy(&henan, "410000", closed, "").await.unwrap();
        let e = file(&app, "4101050001", "4401060002", 1)
            .await
            .unwrap_err()
            .to_domain();
        assert_eq!(e.code, ErrorCode::PolicyViolation);
        assert!(
            e.message.contains("河南省") && e.message.contains("三年级第一学期不办理转出"),
            "{}",
            e.message
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn overdue_steps_are_reminded_escalated_or_approved_by_rule() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let gd = user(&app, "edu440000").await;
        let hn = user(&app, "edu410000").await;
        app.set_policy(
            &gd,
            "440000",
            Policy {
                overdue_action: OverdueAction::Escalate,
                ..Policy::default()
            },
            "",
        )
        .await
        .unwrap();
        app.set_policy(
            &hn,
            "410000",
            Policy {
                overdue_action: OverdueAction::AutoApprove,
                ..Policy::default()
            },
            "",
        )
        .await
        .unwrap();
        // Filed Monday 2026-11-02: the first step is due Friday 11-13.
        let t = file(&app, "4101050001", "4401060001", 0).await.unwrap();
        assert_eq!(t.steps[0].due_date, Some(date(11, 13)));
        assert_eq!(t.steps[0].overdue_action, "escalate");
        assert_eq!(t.steps[2].overdue_action, "auto_approve");
        let school = user(&app, "4401060001-reviewer").await;
        let unread =
            |app: App, u| async move { app.notifications(&u, true, all()).await.unwrap().items };
        // Two working days before: a due-soon reminder, once.
        at(&app, 2026, 11, 11);
        let r = app.process_deadlines().await.unwrap();
        assert_eq!(r.due_soon_reminders, 1);
        assert_eq!(app.process_deadlines().await.unwrap().due_soon_reminders, 0);
        assert!(
            unread(app.clone(), school.clone())
                .await
                .iter()
                .any(|n| n.kind == "due_soon")
        );
        // Overdue on Monday 11-16: reminded and escalated to the school's authority, which may act.
        at(&app, 2026, 11, 16);
        let r = app.process_deadlines().await.unwrap();
        assert_eq!((r.overdue_reminders, r.escalated), (1, 1));
        assert_eq!(
            app.process_deadlines().await.unwrap().escalated,
            0,
            "escalation happens once"
        );
        let edu = user(&app, "edu440106").await;
        assert!(
            unread(app.clone(), edu.clone())
                .await
                .iter()
                .any(|n| n.kind == "escalated")
        );
        let todo = xueji_app::transfers::TransferFilter {
            todo: Some(true),
            ..Default::default()
        };
        assert_eq!(
            app.transfers(&edu, &todo, all()).await.unwrap().total,
            1,
            "the escalated step is on its work list"
        );
        let t = app
            .review_transfer(&edu, t.id, true, "督办同意")
            .await
            .unwrap();
        assert_eq!(t.steps[0].decision.as_deref(), Some("approve"));
        assert!(
            t.steps[0]
                .actor_name
                .as_deref()
                .unwrap_or("")
                .contains("上级督办")
        );
        assert_eq!(t.steps[0].escalated_to.as_deref(), Some("440106"));
        let t = approve(&app, "edu440106", t.id).await;
        assert_eq!(t.status, "out_school_review");
        assert_eq!(t.steps[2].began_on, Some(date(11, 16)));
        assert_eq!(t.steps[2].due_date, Some(date(11, 27)));
        // 河南 decided 逾期视为同意: the sending school's step is approved by the system once overdue.
        at(&app, 2026, 11, 30);
        let r = app.process_deadlines().await.unwrap();
        assert_eq!(r.auto_approved, 1);
        let t = app.transfer(&edu, t.id).await.unwrap();
        assert!(t.steps[2].auto_decided);
        assert_eq!(t.steps[2].actor, None);
        assert!(t.steps[2].opinion.as_deref().unwrap().contains("视为同意"));
        assert_eq!(t.status, "out_authority_review");
        assert_eq!(
            app.process_deadlines().await.unwrap().auto_approved,
            0,
            "the next step is not yet due"
        );
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

/// A backlog (after a holiday, or a server that was down) is handled several steps at once:
/// each step still reminded and escalated exactly once, and the audit chain intact.
#[tokio::test]
async fn a_backlog_of_overdue_steps_is_handled_once_each() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let gd = user(&app, "edu440000").await;
        let policy = Policy {
            overdue_action: OverdueAction::Escalate,
            ..Policy::default()
        };
        app.set_policy(&gd, "440000", policy, "").await.unwrap();
        // More transfers than the job runs at once (8), all due Friday 11-13.
        let mut ids = vec![];
        for from in ["4101050001", "4101050002", "4101020001", "4103020001"] {
            for nth in 0..6 {
                ids.push(file(&app, from, "4401060001", nth).await.unwrap().id);
            }
        }
        at(&app, 2026, 11, 16);
        let r = app.process_deadlines().await.unwrap();
        assert_eq!((r.overdue_reminders, r.escalated), (24, 24));
        let again = app.process_deadlines().await.unwrap();
        assert_eq!((again.overdue_reminders, again.escalated), (0, 0));
        let edu = user(&app, "edu440106").await;
        for id in ids {
            let t = app.transfer(&edu, id).await.unwrap();
            assert_eq!(t.steps[0].escalated_to.as_deref(), Some("440106"));
        }
        let escalations = app
            .notifications(&edu, true, all())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|n| n.kind == "escalated")
            .count();
        assert_eq!(escalations, 24, "one notice per escalated step");
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn dashboards_roll_overdue_counts_up_the_hierarchy() {
    for backend in backends() {
        let app = demo_app(backend).await;
        // Three transfers into 广东 (two 广州 天河 schools, one 深圳 福田), one into 北京.
        let a = file(&app, "4101050001", "4401060001", 0).await.unwrap();
        file(&app, "4101050001", "4401060002", 1).await.unwrap();
        file(&app, "4101050001", "4403040001", 2).await.unwrap();
        let bj = file(&app, "4101050001", "1101080001", 3).await.unwrap();
        // One moves on to its authority on 11-02 (due 11-13 as well).
        approve(&app, "4401060001-reviewer", a.id).await;
        at(&app, 2026, 11, 17); // two working days past 11-13
        let gd = app
            .dashboard(&user(&app, "edu440000").await, None)
            .await
            .unwrap();
        assert_eq!(
            (
                gd.total.waiting,
                gd.total.overdue,
                gd.total.max_overdue_days
            ),
            (3, 3, 2)
        );
        let by: Vec<(&str, i64)> = gd
            .by_region
            .iter()
            .map(|r| (r.code.as_str(), r.counts.overdue))
            .collect();
        assert_eq!(by, [("440100", 2), ("440300", 1)]);
        // Named in one statement with the province itself; the province's overdue list is read
        // in due-date order, a county's from its own range (below).
        assert_eq!(gd.region_name, "广东省");
        let names: Vec<&str> = gd.by_region.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["广州市", "深圳市"]);
        assert_eq!(gd.overdue.len(), 3);
        assert!(
            gd.overdue
                .iter()
                .all(|o| !o.party_name.is_empty() && o.overdue_days >= 2),
            "{:?}",
            gd.overdue
        );
        // The transfer query's 逾期 filter agrees with the dashboard.
        let overdue = TransferFilter {
            overdue: Some(true),
            ..Default::default()
        };
        let listed = |who: &'static str| {
            let (app, overdue) = (&app, &overdue);
            async move {
                app.transfers(&user(app, who).await, overdue, all())
                    .await
                    .unwrap()
                    .total
            }
        };
        assert_eq!(listed("edu440000").await, 3);
        assert_eq!(listed("moe").await, 4);
        assert_eq!(
            listed("edu410000").await,
            4,
            "sent from 河南: overdue there too"
        );
        assert_eq!(
            gd.by_school.iter().map(|r| r.counts.overdue).sum::<i64>(),
            2,
            "two steps wait at schools"
        );
        let city = app
            .dashboard(&user(&app, "edu440100").await, None)
            .await
            .unwrap();
        assert_eq!(city.total.overdue, 2);
        assert_eq!(
            city.by_region
                .iter()
                .map(|r| r.code.as_str())
                .collect::<Vec<_>>(),
            ["440106"]
        );
        let county = app
            .dashboard(&user(&app, "edu440106").await, None)
            .await
            .unwrap();
        assert_eq!(
            (county.total.overdue, county.own.overdue),
            (2, 1),
            "one waits at the county itself"
        );
        assert_eq!(county.overdue.len(), 2, "{:?}", county.overdue);
        let nation = app.dashboard(&user(&app, "moe").await, None).await.unwrap();
        let by: Vec<(&str, i64)> = nation
            .by_region
            .iter()
            .map(|r| (r.code.as_str(), r.counts.overdue))
            .collect();
        assert_eq!(by, [("110000", 1), ("440000", 3)]);
        assert_eq!(nation.overdue.len(), 4);
        assert!(
            gd.by_school.iter().all(|r| !r.name.is_empty()),
            "schools are named: {:?}",
            gd.by_school
        );
        // A withdrawn transfer waits on no one: its step leaves every dashboard.
        app.withdraw_transfer(&user(&app, "1101080001-admin").await, bj.id, "家长改变主意")
            .await
            .unwrap();
        let nation = app.dashboard(&user(&app, "moe").await, None).await.unwrap();
        assert_eq!(
            (nation.total.waiting, nation.overdue.len()),
            (3, 3),
            "the withdrawn step is not counted"
        );
        assert_eq!(listed("moe").await, 3, "nor listed as overdue");
        // Drill-down stays inside the caller's region.
        let drill = app
            .dashboard(&user(&app, "edu440000").await, Some("440300"))
            .await
            .unwrap();
        assert_eq!(drill.total.overdue, 1);
        assert_eq!(
            refused(
                app.dashboard(&user(&app, "edu440100").await, Some("440300"))
                    .await
            ),
            ErrorCode::NotFound
        );
        assert_eq!(
            refused(
                app.dashboard(&user(&app, "4401060001-admin").await, None)
                    .await
            ),
            ErrorCode::Forbidden
        );
        let hn = app
            .dashboard(&user(&app, "edu410000").await, None)
            .await
            .unwrap();
        assert_eq!(hn.total.waiting, 0, "nothing waits at 河南's side yet");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn stale_cases_are_listed_and_closed_with_a_reason() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let t = file(&app, "4101050001", "4401060001", 0).await.unwrap();
        let gd = user(&app, "edu440000").await;
        assert!(app.stale_transfers(&gd, None).await.unwrap().is_empty());
        at(&app, 2027, 6, 1);
        let stale = app.stale_transfers(&gd, None).await.unwrap();
        assert_eq!(
            stale.iter().map(|s| s.transfer_id).collect::<Vec<_>>(),
            vec![t.id]
        );
        assert_eq!(
            refused(
                app.close_transfer(&user(&app, "edu440106").await, t.id, "x")
                    .await
            ),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(app.close_transfer(&gd, t.id, " ").await),
            ErrorCode::ReasonRequired
        );
        let closed = app
            .close_transfer(&gd, t.id, "家长已放弃转学，学校未撤销")
            .await
            .unwrap();
        assert_eq!(closed.status, "closed");
        assert!(app.stale_transfers(&gd, None).await.unwrap().is_empty());
        assert_eq!(
            app.dashboard(&gd, None).await.unwrap().total.waiting,
            0,
            "a closed transfer's step waits no more"
        );
        // Never purged: still readable with its reason; the student is free again.
        let r = app
            .transfer(&user(&app, "4101050001-admin").await, t.id)
            .await
            .unwrap();
        assert_eq!(
            r.closed_reason.as_deref(),
            Some("家长已放弃转学，学校未撤销")
        );
        at(&app, 2026, 11, 2);
        assert!(file(&app, "4101050001", "4401060002", 0).await.is_ok());
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn parents_see_progress_and_nothing_else() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let t = file(&app, "4101050001", "4401060001", 0).await.unwrap();
        let code = t
            .query_code
            .clone()
            .expect("the receiving school sees the query code");
        assert_eq!(code.len(), 10);
        let sender = app
            .transfer(&user(&app, "4101050001-admin").await, t.id)
            .await
            .unwrap();
        assert_eq!(
            sender.query_code, None,
            "only the receiving school hands it out"
        );
        let v = app
            .parent_query(&code.to_lowercase(), &t.student_name, "203.0.113.9")
            .await
            .unwrap();
        assert_eq!(v.current_step.as_deref(), Some("待转入学校审核"));
        assert_eq!(v.due_date, Some(date(11, 13)));
        assert_eq!(v.outcome, None);
        let json = serde_json::to_value(&v).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "current_step",
                "due_date",
                "filed_on",
                "kind",
                "outcome",
                "status"
            ]
        );
        let text = json.to_string();
        assert!(
            !text.contains(&t.student_no[1..7])
                && !text.contains(&t.from_school_name)
                && !text.contains(&t.to_school_name)
        );
        // Wrong name or code: not found; repeated guessing is throttled per address.
        assert_eq!(
            refused(app.parent_query(&code, "别人", "203.0.113.10").await),
            ErrorCode::NotFound
        );
        for _ in 0..9 {
            let _ = app.parent_query("ABCDEFGHJK", "某某", "203.0.113.10").await;
        }
        assert_eq!(
            refused(
                app.parent_query(&code, &t.student_name, "203.0.113.10")
                    .await
            ),
            ErrorCode::TooManyRequests
        );
        assert!(
            app.parent_query(&code, &t.student_name, "203.0.113.11")
                .await
                .is_ok()
        );
        // The outcome once decided.
        let rev = user(&app, "4401060001-reviewer").await;
        app.review_transfer(&rev, t.id, false, "学位已满")
            .await
            .unwrap();
        let v = app
            .parent_query(&code, &t.student_name, "203.0.113.11")
            .await
            .unwrap();
        assert_eq!(v.outcome.as_deref(), Some("不同意"));
        assert_eq!(v.current_step, None);
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn statistics_count_outcomes_durations_and_reasons() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let a = file(&app, "4101050001", "4401060001", 0).await.unwrap();
        let b = file(&app, "4101050001", "4403040001", 1).await.unwrap();
        file(&app, "4101050001", "1101080001", 2).await.unwrap();
        // a: the receiving school approves on day 1, its authority three working days later.
        approve(&app, "4401060001-reviewer", a.id).await;
        at(&app, 2026, 11, 5);
        approve(&app, "edu440106", a.id).await;
        // b: refused by the receiving school.
        let rev = user(&app, "4403040001-reviewer").await;
        app.review_transfer(&rev, b.id, false, "学位已满")
            .await
            .unwrap();
        let gd = app
            .statistics(&user(&app, "edu440000").await, &Default::default())
            .await
            .unwrap();
        assert_eq!(
            (
                gd.totals_in.total,
                gd.totals_in.rejected,
                gd.totals_in.in_progress
            ),
            (2, 1, 1)
        );
        assert_eq!(gd.totals_out.total, 0, "nothing leaves 广东");
        let by: Vec<(&str, i64)> = gd
            .by_region
            .iter()
            .map(|r| (r.code.as_str(), r.transfers_in.total))
            .collect();
        assert_eq!(by, [("440100", 1), ("440300", 1)]);
        let step = |k: &str| gd.by_step.iter().find(|s| s.key == k).cloned().unwrap();
        assert_eq!(step("in_school").decided, 2);
        assert_eq!(
            step("in_authority").median_days,
            4.0,
            "11-02 to 11-05 counting the first day"
        );
        assert_eq!(
            gd.by_authority
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>(),
            ["440106"]
        );
        assert_eq!(gd.refusal_reasons[0].opinion, "学位已满");
        let hn = app
            .statistics(&user(&app, "edu410000").await, &Default::default())
            .await
            .unwrap();
        assert_eq!((hn.totals_out.total, hn.totals_out.cross_province), (3, 3));
        let nation = app
            .statistics(&user(&app, "moe").await, &Default::default())
            .await
            .unwrap();
        assert_eq!(nation.by_region.len(), 3, "北京, 河南, 广东");
        let bytes = app
            .export_statistics(&user(&app, "edu440000").await, &Default::default())
            .await
            .unwrap();
        assert_eq!(&bytes[0..2], b"PK", "an .xlsx (zip) workbook");
        assert_eq!(
            refused(
                app.statistics(&user(&app, "4401060001-admin").await, &Default::default())
                    .await
            ),
            ErrorCode::Forbidden
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_leader_confirmation_is_made_by_another_person() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let gd = user(&app, "edu440000").await;
        app.set_policy(
            &gd,
            "440000",
            Policy {
                leader_confirm: true,
                ..Policy::default()
            },
            "领导确认",
        )
        .await
        .unwrap();
        let t = file(&app, "4101050001", "4401060001", 0).await.unwrap();
        let codes: Vec<&str> = t.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            codes,
            [
                "in_school",
                "in_authority",
                "in_authority_leader",
                "out_school",
                "out_authority"
            ]
        );
        approve(&app, "4401060001-reviewer", t.id).await;
        let operator = user(&app, "edu440106").await;
        app.review_transfer(&operator, t.id, true, "经办同意")
            .await
            .unwrap();
        assert_eq!(
            refused(app.review_transfer(&operator, t.id, true, "").await),
            ErrorCode::Forbidden
        );
        let t = approve(&app, "edu440106-leader", t.id).await;
        assert_eq!(t.status, "out_school_review");
        assert_eq!(t.steps[2].actor.as_deref(), Some("edu440106-leader"));
        dispose(&app.db).await;
    }
}

/// 处分: the school that holds the student records and revokes it; the sending province's
/// `refuse_sanctioned` refuses a transfer out while one is in force, naming the rule.
#[tokio::test]
async fn sanctions_are_recorded_revoked_and_refused_where_the_sending_province_says_so() {
    use xueji_app::sanctions::NewSanction;
    for backend in backends() {
        let app = demo_app(backend).await;
        let admin = user(&app, "4101050001-admin").await;
        let f = StudentFilter {
            grade: Some("13".into()),
            ..Default::default()
        };
        let s = app.students(&admin, &f, all()).await.unwrap().items[0].clone();
        let no = s.student_no.clone();
        let new = |kind: &str, reason: &str, decided: NaiveDate| NewSanction {
            kind: kind.into(),
            reason: reason.into(),
            decided_on: decided,
            ends_on: None,
        };
        // Who may record: only the current school's 学籍管理员.
        let reviewer = user(&app, "4101050001-reviewer").await;
        let county = user(&app, "edu410105").await;
        let other = user(&app, "4101050002-admin").await;
        let ok = new("demerit", "课堂斗殴，校字〔2026〕3号", date(10, 8));
        assert_eq!(
            refused(app.record_sanction(&reviewer, &no, &ok).await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(app.record_sanction(&county, &no, &ok).await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(app.record_sanction(&other, &no, &ok).await),
            ErrorCode::NotFound,
            "another school does not learn the student exists"
        );
        assert_eq!(
            refused(app.sanctions(&other, &no).await),
            ErrorCode::NotFound
        );
        // What is checked.
        assert_eq!(
            refused(
                app.record_sanction(&admin, &no, &new("expulsion", "x", date(10, 8)))
                    .await
            ),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            refused(
                app.record_sanction(&admin, &no, &new("warning", "  ", date(10, 8)))
                    .await
            ),
            ErrorCode::ReasonRequired
        );
        assert_eq!(
            refused(
                app.record_sanction(&admin, &no, &new("warning", "x", date(11, 3)))
                    .await
            ),
            ErrorCode::ValidationFailed,
            "a decision cannot be dated after today (the test clock is 11-02)"
        );
        let rec = app.record_sanction(&admin, &no, &ok).await.unwrap();
        assert!(rec.in_force);
        assert_eq!(rec.kind_name, "记过");
        assert_eq!(rec.ends_on, NaiveDate::from_ymd_opt(2027, 10, 8).unwrap());
        // The county authority reads it; the audit trail has it.
        let seen = app.sanctions(&county, &no).await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].reason, "课堂斗殴，校字〔2026〕3号");
        assert_eq!(
            crate::count(
                &app.db,
                &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'sanction.record' AND entity_id = '{no}'")
            )
            .await,
            1
        );

        // The national default does not refuse; 河南 opting in does, on its own (sending) side only.
        let to_admin = user(&app, "4401060001-admin").await;
        let class = app
            .classes(&to_admin, "4401060001")
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.grade == "13")
            .unwrap()
            .id;
        let req = NewTransfer {
            from_province: "410000".into(),
            student_name: s.name.clone(),
            student_ref: no.clone(),
            to_grade: "13".into(),
            to_class_id: class,
            reason: "随迁".into(),
        };
        let gd_strict = Policy {
            refuse_sanctioned: true,
            ..Policy::default()
        };
        app.set_policy(&user(&app, "edu440000").await, "440000", gd_strict, "")
            .await
            .unwrap();
        let t = app
            .file_transfer(&to_admin, &req, vec![])
            .await
            .expect("the receiving province's rule does not look at the sending side");
        app.withdraw_transfer(&to_admin, t.id, "测试撤销")
            .await
            .unwrap();
        let ha_strict = Policy {
            refuse_sanctioned: true,
            ..Policy::default()
        };
        app.set_policy(&user(&app, "edu410000").await, "410000", ha_strict, "")
            .await
            .unwrap();
        let e = app
            .file_transfer(&to_admin, &req, vec![])
            .await
            .unwrap_err()
            .to_domain();
        assert_eq!(e.code, ErrorCode::PolicyViolation);
        assert!(
            e.message.contains("河南省") && e.message.contains("处分"),
            "{}",
            e.message
        );

        // 解除处分 by the school: filing goes through; a second revocation is a conflict.
        assert_eq!(
            refused(app.revoke_sanction(&admin, rec.id, "").await),
            ErrorCode::ReasonRequired
        );
        assert_eq!(
            refused(app.revoke_sanction(&other, rec.id, "表现良好").await),
            ErrorCode::NotFound
        );
        let revoked = app
            .revoke_sanction(&admin, rec.id, "表现良好，提前解除")
            .await
            .unwrap();
        assert!(!revoked.in_force && revoked.revoked_at.is_some());
        assert_eq!(
            refused(app.revoke_sanction(&admin, rec.id, "再次").await),
            ErrorCode::Conflict
        );
        app.file_transfer(&to_admin, &req, vec![])
            .await
            .expect("no sanction in force any more");
        dispose(&app.db).await;
    }
}
