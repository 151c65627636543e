//! 学籍异动 and 关键数据变更 through the use cases, on every backend: each kind's effect after
//! approval, the business lock against transfers, refusals by role and jurisdiction, the duplicate
//! check of a new identity number, and simultaneous approvals.

use chrono::NaiveDate;
use xueji_app::App;
use xueji_app::changes::{ChangeDetail, ChangeFilter, NewChange, StudentPatch};
use xueji_app::registration::NewStudent;
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_app::transfers::{Evidence, NewTransfer};
use xueji_domain::ErrorCode;
use xueji_domain::ids::{IdNumber, StudentNo};

use crate::{all, count, dispose, exec, refused, user};

/// 金水区第一初级中学: grades 21–23.
const JUNIOR: &str = "4101050003";
const REVIEWER: &str = "4101050003-reviewer";
const ADMIN: &str = "4101050003-admin";
const AUTHORITY: &str = "edu410105";

/// The `nth` student of a grade of a school: (student_no, name).
async fn nth_student(app: &App, school: &str, grade: &str, nth: usize) -> (String, String) {
    let u = user(app, &format!("{school}-admin")).await;
    let f = StudentFilter {
        grade: Some(grade.into()),
        ..Default::default()
    };
    let list = app.students(&u, &f, all()).await.expect("students");
    let s = &list.items[nth];
    (s.student_no.clone(), s.name.clone())
}

fn req(kind: &str) -> NewChange {
    NewChange {
        kind: kind.into(),
        reason: "家长申请".into(),
        ..Default::default()
    }
}

fn pdf() -> Evidence {
    Evidence {
        filename: "户口簿.pdf".into(),
        bytes: b"%PDF-1.4 test".to_vec(),
    }
}

async fn file(app: &App, no: &str, r: NewChange) -> ChangeDetail {
    let admin = user(app, ADMIN).await;
    app.file_change(&admin, no, &r, vec![])
        .await
        .unwrap_or_else(|e| panic!("file {}: {e}", r.kind))
}

/// The school's reviewer, then the authority, approve.
async fn approve_both(app: &App, id: i64) -> ChangeDetail {
    let reviewer = user(app, REVIEWER).await;
    let d = app
        .review_change(&reviewer, id, true, "情况属实")
        .await
        .expect("school review");
    assert_eq!(d.status, "pending_authority");
    let authority = user(app, AUTHORITY).await;
    let d = app
        .review_change(&authority, id, true, "同意")
        .await
        .expect("authority approval");
    assert_eq!(d.status, "applied");
    d
}

async fn lock_of(app: &App, no: &str) -> Option<String> {
    let admin = user(app, ADMIN).await;
    app.student(&admin, no).await.unwrap().summary.open_business
}

#[tokio::test]
async fn status_changes_apply_their_effects_after_approval() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let admin = user(&app, ADMIN).await;
        // Picked once: the list's order moves as students change class and status.
        let mut g22 = vec![];
        for i in 0..6 {
            g22.push(nth_student(&app, JUNIOR, "22", i).await.0);
        }

        // 休学 with its period, then 复学 into the grade below.
        let no = g22[0].clone();
        let mut r = req("suspension");
        r.from_date = NaiveDate::from_ymd_opt(2026, 11, 2);
        r.until_date = NaiveDate::from_ymd_opt(2027, 7, 1);
        let d = file(&app, &no, r).await;
        assert_eq!(d.status, "pending_school");
        assert_eq!(
            d.steps.iter().map(|s| s.party.as_str()).collect::<Vec<_>>(),
            [JUNIOR, "410105"]
        );
        assert_eq!(lock_of(&app, &no).await.as_deref(), Some("status_change"));
        let d = approve_both(&app, d.id).await;
        assert!(d.applied_at.is_some());
        assert!(
            d.steps
                .iter()
                .all(|s| s.decision.as_deref() == Some("approve"))
        );
        let s = app.student(&admin, &no).await.unwrap();
        assert_eq!(s.summary.status, "suspended");
        assert_eq!(s.summary.open_business, None, "the end releases the lock");
        assert_eq!(s.enrollments[0].status, "suspended");
        assert!(s.enrollments[1].ended_at.is_some());
        let classes = app.classes(&admin, JUNIOR).await.unwrap();
        let class21 = classes.iter().find(|c| c.grade == "21").unwrap().id;
        let mut r = req("resumption");
        r.to_grade = Some("21".into());
        r.to_class_id = Some(class21);
        let d = file(&app, &no, r).await;
        approve_both(&app, d.id).await;
        let s = app.student(&admin, &no).await.unwrap();
        assert_eq!(s.summary.status, "enrolled");
        assert_eq!(s.summary.grade.as_deref(), Some("21"));
        assert_eq!(s.summary.class_id, Some(class21));
        assert_eq!(s.enrollments[0].status, "active");

        // 辍学: the report duty is stated and the authority told at once and on approval.
        let no = g22[1].clone();
        let before = count(
            &app.db,
            "SELECT COUNT(*) FROM notifications WHERE org_code = '410105' AND kind = 'dropout_report'",
        )
        .await;
        let d = file(&app, &no, req("dropout")).await;
        assert!(d.notice.as_deref().unwrap().contains("劝返"));
        approve_both(&app, d.id).await;
        let after = count(
            &app.db,
            "SELECT COUNT(*) FROM notifications WHERE org_code = '410105' AND kind = 'dropout_report'",
        )
        .await;
        assert_eq!(after - before, 2);
        let s = app.student(&admin, &no).await.unwrap();
        assert_eq!(s.summary.status, "dropped_out");
        assert_eq!(s.summary.class_id, None, "the seat is freed");
        assert_eq!(s.enrollments[0].status, "dropped_out");
        assert!(s.enrollments[0].ended_at.is_some());
        // 劝返复学: brought back, the student resumes into a class of the same grade.
        let class22 = classes.iter().find(|c| c.grade == "22").unwrap().id;
        let mut r = req("resumption");
        r.to_class_id = Some(class22);
        let d = file(&app, &no, r).await;
        approve_both(&app, d.id).await;
        let s = app.student(&admin, &no).await.unwrap();
        assert_eq!(s.summary.status, "enrolled");
        assert_eq!(s.summary.class_id, Some(class22));
        assert_eq!(s.enrollments[0].status, "active");
        assert!(s.enrollments[0].ended_at.is_none());

        // 死亡.
        let no = g22[2].clone();
        let d = file(&app, &no, req("death")).await;
        approve_both(&app, d.id).await;
        assert_eq!(
            app.student(&admin, &no).await.unwrap().summary.status,
            "deceased"
        );

        // 出境学习, then 回国复学 flagged in the history as a return.
        let no = g22[3].clone();
        let d = file(&app, &no, req("abroad")).await;
        approve_both(&app, d.id).await;
        assert_eq!(
            app.student(&admin, &no).await.unwrap().summary.status,
            "abroad"
        );
        let d = file(&app, &no, req("return_from_abroad")).await;
        approve_both(&app, d.id).await;
        let s = app.student(&admin, &no).await.unwrap();
        assert_eq!(s.summary.status, "enrolled");
        assert_eq!(s.summary.grade.as_deref(), Some("22"));
        let sid = count(
            &app.db,
            &format!("SELECT student_id FROM student_numbers WHERE student_no = '{no}'"),
        )
        .await;
        assert_eq!(
            count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) FROM enrollments WHERE student_id = {sid} AND entry_kind = 'return_from_abroad' AND ended_at IS NULL"
                ),
            )
            .await,
            1
        );

        // 留级 and 跳级 move one grade within 初中.
        let no = g22[4].clone();
        let d = file(&app, &no, req("repeat_grade")).await;
        assert_eq!(d.payload.to_grade.as_deref(), Some("21"));
        approve_both(&app, d.id).await;
        assert_eq!(
            app.student(&admin, &no)
                .await
                .unwrap()
                .summary
                .grade
                .as_deref(),
            Some("21")
        );
        let no = g22[5].clone();
        let d = file(&app, &no, req("skip_grade")).await;
        approve_both(&app, d.id).await;
        assert_eq!(
            app.student(&admin, &no)
                .await
                .unwrap()
                .summary
                .grade
                .as_deref(),
            Some("23")
        );
        // 初三 of a school without 初四 cannot skip.
        let (no, _) = nth_student(&app, JUNIOR, "23", 0).await;
        assert_eq!(
            refused(
                app.file_change(&admin, &no, &req("skip_grade"), vec![])
                    .await
            ),
            ErrorCode::PolicyViolation
        );

        // Every applied change wrote its audit rows.
        assert!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'change.apply'"
            )
            .await
                >= 8
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn withdrawal_is_for_senior_high_and_special_education_moves_the_record() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let admin = user(&app, ADMIN).await;
        // 退学 is refused for an 初中 student.
        let (no, _) = nth_student(&app, JUNIOR, "21", 0).await;
        let e = app
            .file_change(&admin, &no, &req("withdrawal"), vec![])
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PolicyViolation);
        assert_eq!(lock_of(&app, &no).await, None, "nothing was opened");

        // Make the school teach 高一 and put a student there: 退学 then applies.
        exec(
            &app.db,
            &format!("UPDATE schools SET grades = grades || ',31' WHERE code = '{JUNIOR}'"),
        )
        .await
        .unwrap();
        exec(
            &app.db,
            &format!(
                "INSERT INTO classes (school_id, grade, name, capacity) SELECT id, '31', '高一（1）班', 45 FROM schools WHERE code = '{JUNIOR}'"
            ),
        )
        .await
        .unwrap();
        let (no, _) = nth_student(&app, JUNIOR, "23", 1).await;
        exec(
            &app.db,
            &format!(
                "UPDATE students SET grade = '31', class_id = (SELECT id FROM classes WHERE name = '高一（1）班') \
                 WHERE id = (SELECT student_id FROM student_numbers WHERE student_no = '{no}')"
            ),
        )
        .await
        .unwrap();
        let d = file(&app, &no, req("withdrawal")).await;
        approve_both(&app, d.id).await;
        let s = app.student(&admin, &no).await.unwrap();
        assert_eq!(s.summary.status, "withdrawn");
        assert_eq!(s.enrollments[0].status, "withdrawn");

        // 转入特教/工读: into a class of a 专门学校 of the same province.
        exec(
            &app.db,
            "INSERT INTO schools (code, name, region_code, authority_region, school_type, grades, created_at) \
             SELECT '4101029001', '郑州市专门学校', '410102', '410102', '专门学校', '21,22,23', created_at FROM schools WHERE code = '4101050003'",
        )
        .await
        .unwrap();
        exec(
            &app.db,
            "INSERT INTO classes (school_id, grade, name, capacity) SELECT id, '22', '初二（1）班', 30 FROM schools WHERE code = '4101029001'",
        )
        .await
        .unwrap();
        let target = count(
            &app.db,
            "SELECT c.id FROM classes c JOIN schools s ON s.id = c.school_id WHERE s.code = '4101029001'",
        )
        .await;
        // An ordinary school's class is refused.
        let own_class = app.classes(&admin, JUNIOR).await.unwrap()[3].id;
        let (no, _) = nth_student(&app, JUNIOR, "22", 6).await;
        let mut r = req("special_education");
        r.to_class_id = Some(own_class);
        assert!(app.file_change(&admin, &no, &r, vec![]).await.is_err());
        r.to_class_id = Some(target);
        let d = file(&app, &no, r).await;
        assert_eq!(d.payload.to_school.as_deref(), Some("4101029001"));
        approve_both(&app, d.id).await;
        let national = user(&app, "moe").await;
        let s = app.student(&national, &no).await.unwrap();
        assert_eq!(s.school.as_deref(), Some("4101029001"));
        assert_eq!(s.summary.class_id, Some(target));
        assert_eq!(s.enrollments[1].status, "transferred_out");
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM notifications WHERE org_code = '4101029001' AND kind = 'change_applied'"
            )
            .await,
            1
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn refusal_and_withdrawal_release_the_lock() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (no, _) = nth_student(&app, JUNIOR, "21", 1).await;
        let d = file(&app, &no, req("death")).await;
        let reviewer = user(&app, REVIEWER).await;
        let authority = user(&app, AUTHORITY).await;
        app.review_change(&reviewer, d.id, true, "").await.unwrap();
        assert_eq!(
            refused(app.review_change(&authority, d.id, false, " ").await),
            ErrorCode::ReasonRequired
        );
        let d = app
            .review_change(&authority, d.id, false, "缺少死亡证明")
            .await
            .unwrap();
        assert_eq!(d.status, "refused");
        assert_eq!(d.steps[1].opinion.as_deref(), Some("缺少死亡证明"));
        assert_eq!(lock_of(&app, &no).await, None);
        let admin = user(&app, ADMIN).await;
        assert_eq!(
            app.student(&admin, &no).await.unwrap().summary.status,
            "enrolled"
        );
        // The school heard of it.
        assert!(
            count(
                &app.db,
                &format!("SELECT COUNT(*) FROM notifications WHERE org_code = '{JUNIOR}' AND kind = 'change_refused'"),
            )
            .await
                >= 1
        );

        // Withdrawal by the school's administrator while pending.
        let d = file(&app, &no, req("abroad")).await;
        assert_eq!(
            refused(app.withdraw_change(&reviewer, d.id, "不需要了").await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(app.withdraw_change(&admin, d.id, "").await),
            ErrorCode::ReasonRequired
        );
        let d = app.withdraw_change(&admin, d.id, "家长撤回").await.unwrap();
        assert_eq!(d.status, "withdrawn");
        assert_eq!(d.withdraw_reason.as_deref(), Some("家长撤回"));
        assert_eq!(lock_of(&app, &no).await, None);
        assert_eq!(
            refused(app.review_change(&reviewer, d.id, true, "").await),
            ErrorCode::Conflict
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn the_business_lock_holds_against_transfers_both_ways() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let receiver = user(&app, "4401060003-admin").await;
        let class = app
            .classes(&receiver, "4401060003")
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.grade == "22")
            .unwrap()
            .id;
        let transfer = |no: &str, name: &str| NewTransfer {
            from_province: "410000".into(),
            student_name: name.into(),
            student_ref: no.into(),
            to_grade: "22".into(),
            to_class_id: class,
            reason: "随父母迁居".into(),
        };
        // A transfer is open: no change may be filed.
        let (no, name) = nth_student(&app, JUNIOR, "22", 0).await;
        app.file_transfer(&receiver, &transfer(&no, &name), vec![])
            .await
            .expect("transfer");
        let admin = user(&app, ADMIN).await;
        assert_eq!(
            refused(app.file_change(&admin, &no, &req("death"), vec![]).await),
            ErrorCode::TransferInProgress
        );
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM change_requests").await,
            0,
            "the refused request left nothing behind"
        );
        // A change is open: no transfer may be filed, and no second change.
        let (no, name) = nth_student(&app, JUNIOR, "22", 1).await;
        file(&app, &no, req("abroad")).await;
        assert_eq!(
            refused(
                app.file_transfer(&receiver, &transfer(&no, &name), vec![])
                    .await
            ),
            ErrorCode::TransferInProgress
        );
        assert_eq!(
            refused(app.file_change(&admin, &no, &req("death"), vec![]).await),
            ErrorCode::TransferInProgress
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn wrong_roles_and_outsiders_are_refused() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (no, _) = nth_student(&app, JUNIOR, "21", 2).await;
        // Filing: only the student's own school's administrator.
        let reviewer = user(&app, REVIEWER).await;
        assert_eq!(
            refused(app.file_change(&reviewer, &no, &req("death"), vec![]).await),
            ErrorCode::Forbidden
        );
        let authority = user(&app, AUTHORITY).await;
        assert_eq!(
            refused(
                app.file_change(&authority, &no, &req("death"), vec![])
                    .await
            ),
            ErrorCode::Forbidden
        );
        let other_school = user(&app, "4101050001-admin").await;
        assert_eq!(
            refused(
                app.file_change(&other_school, &no, &req("death"), vec![])
                    .await
            ),
            ErrorCode::NotFound
        );
        let d = file(&app, &no, req("death")).await;
        let admin = user(&app, ADMIN).await;
        // Reviewing: not the filer, not the authority before the school, not outsiders.
        assert_eq!(
            refused(app.review_change(&admin, d.id, true, "").await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(app.review_change(&authority, d.id, true, "").await),
            ErrorCode::NotYourTurn
        );
        let stranger = user(&app, "edu440106").await;
        assert_eq!(
            refused(app.review_change(&stranger, d.id, true, "").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            refused(app.change(&stranger, d.id).await),
            ErrorCode::NotFound
        );
        let other_reviewer = user(&app, "4101050001-reviewer").await;
        assert_eq!(
            refused(app.review_change(&other_reviewer, d.id, true, "").await),
            ErrorCode::NotFound
        );
        let national = user(&app, "moe").await;
        assert_eq!(
            refused(app.review_change(&national, d.id, true, "").await),
            ErrorCode::Forbidden
        );
        // Work lists: the reviewer sees it waiting, the authority not yet; strangers nothing.
        let todo = ChangeFilter {
            todo: Some(true),
            ..Default::default()
        };
        assert_eq!(app.changes(&reviewer, &todo, all()).await.unwrap().total, 1);
        assert_eq!(
            app.changes(&authority, &todo, all()).await.unwrap().total,
            0
        );
        app.review_change(&reviewer, d.id, true, "").await.unwrap();
        assert_eq!(app.changes(&reviewer, &todo, all()).await.unwrap().total, 0);
        assert_eq!(
            app.changes(&authority, &todo, all()).await.unwrap().total,
            1
        );
        let everything = ChangeFilter::default();
        assert_eq!(
            app.changes(&stranger, &everything, all())
                .await
                .unwrap()
                .total,
            0
        );
        assert_eq!(
            app.changes(&other_school, &everything, all())
                .await
                .unwrap()
                .total,
            0
        );
        assert_eq!(
            app.changes(&national, &everything, all())
                .await
                .unwrap()
                .total,
            1
        );
        dispose(&app.db).await;
    }
}

/// A valid resident identity number not on record, with this birth date and gender.
fn fresh_id(birth: NaiveDate, male: bool) -> IdNumber {
    let seq = if male { 997 } else { 996 };
    IdNumber::from_parts("410105", birth, seq)
}

#[tokio::test]
async fn key_changes_need_evidence_and_pass_the_duplicate_check_twice() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let admin = user(&app, ADMIN).await;
        let (no, _) = nth_student(&app, JUNIOR, "23", 2).await;
        let (other_no, _) = nth_student(&app, JUNIOR, "23", 3).await;
        let s = app.student(&admin, &no).await.unwrap();
        let other = app.student(&admin, &other_no).await.unwrap();

        // Without evidence: refused. With another student's number: duplicate_person.
        let mut r = req("key_change");
        r.new_id_number = other.id_number.clone();
        assert_eq!(
            refused(app.file_change(&admin, &no, &r, vec![]).await),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            refused(app.file_change(&admin, &no, &r, vec![pdf()]).await),
            ErrorCode::DuplicatePerson
        );
        // A bad check digit: invalid_id_number.
        let mut bad = fresh_id(s.summary.birth_date, s.summary.gender == "male")
            .as_str()
            .to_string();
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        r.new_id_number = Some(bad);
        assert_eq!(
            refused(app.file_change(&admin, &no, &r, vec![pdf()]).await),
            ErrorCode::InvalidIdNumber
        );

        // A valid new number: filed, then someone registers that number before the approval.
        let new_id = fresh_id(s.summary.birth_date, s.summary.gender == "male");
        r.new_id_number = Some(new_id.as_str().into());
        r.new_name = Some("李新名".into());
        let d = app.file_change(&admin, &no, &r, vec![pdf()]).await.unwrap();
        assert_eq!(d.evidence.len(), 1);
        assert_eq!(d.payload.new_name.as_deref(), Some("李新名"));
        assert_eq!(lock_of(&app, &no).await.as_deref(), Some("key_change"));
        let reviewer = user(&app, REVIEWER).await;
        app.review_change(&reviewer, d.id, true, "").await.unwrap();
        let other_admin = user(&app, "4101050002-admin").await;
        let class = app
            .classes(&other_admin, "4101050002")
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.grade == "23")
            .unwrap()
            .id;
        app.register_student(
            &other_admin,
            &NewStudent {
                name: "王抢先".into(),
                gender: s.summary.gender.clone(),
                birth_date: s.summary.birth_date.to_string(),
                ethnicity: "01".into(),
                id_type: "1".into(),
                id_number: new_id.as_str().into(),
                grade: "23".into(),
                class_id: class,
                confirm_suspected: true,
            },
        )
        .await
        .expect("registered meanwhile");
        let authority = user(&app, AUTHORITY).await;
        assert_eq!(
            refused(app.review_change(&authority, d.id, true, "").await),
            ErrorCode::DuplicatePerson
        );
        let still = app.change(&authority, d.id).await.unwrap();
        assert_eq!(still.status, "pending_authority", "nothing was written");
        let refusal = app
            .review_change(&authority, d.id, false, "证件号码已被占用")
            .await
            .unwrap();
        assert_eq!(refusal.status, "refused");

        // Another valid number: applied; the G number follows, the old one stays in the history.
        let newer = IdNumber::from_parts(
            "410105",
            s.summary.birth_date,
            if s.summary.gender == "male" { 995 } else { 994 },
        );
        let mut r = req("key_change");
        r.new_id_number = Some(newer.as_str().into());
        let d = app.file_change(&admin, &no, &r, vec![pdf()]).await.unwrap();
        approve_both(&app, d.id).await;
        let new_no = StudentNo::formal(&newer).as_str().to_string();
        let after = app
            .student(&admin, &no)
            .await
            .expect("found by the old number");
        assert_eq!(after.summary.student_no, new_no);
        assert_eq!(after.id_number.as_deref(), Some(newer.as_str()));
        assert_eq!(after.numbers.len(), 2);
        assert!(
            after
                .numbers
                .iter()
                .any(|n| n.student_no == no && n.replaced_at.is_some())
        );
        // The audit trail holds the requested number masked (the G number itself is the
        // identifier every audit row names).
        assert_eq!(
            count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) FROM audit_log WHERE action = 'change.file' AND after_json LIKE '%\"new_id_number\":\"{}\"%'",
                    newer.as_str()
                ),
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) FROM audit_log WHERE action = 'change.file' AND after_json LIKE '%{}%'",
                    xueji_domain::ids::mask_document(newer.as_str())
                ),
            )
            .await,
            1
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn simultaneous_approvals_give_one_conflict() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let (no, _) = nth_student(&app, JUNIOR, "21", 3).await;
        let d = file(&app, &no, req("abroad")).await;
        let reviewer = user(&app, REVIEWER).await;
        app.review_change(&reviewer, d.id, true, "").await.unwrap();
        let a = user(&app, AUTHORITY).await;
        let b = user(&app, AUTHORITY).await;
        let (r1, r2) = tokio::join!(
            app.review_change(&a, d.id, true, "同意"),
            app.review_change(&b, d.id, true, "同意")
        );
        let codes: Vec<Option<ErrorCode>> = [&r1, &r2]
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.code()))
            .collect();
        assert_eq!(
            codes.iter().filter(|c| c.is_none()).count(),
            1,
            "{backend:?}: one success: {codes:?}"
        );
        assert!(codes.contains(&Some(ErrorCode::Conflict)), "{codes:?}");
        // Applied exactly once.
        assert_eq!(
            count(
                &app.db,
                &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'change.apply' AND entity_id = '{}'", d.id),
            )
            .await,
            1
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn non_key_fields_are_edited_directly_key_fields_are_not() {
    for backend in backends() {
        let app = demo_app(backend).await;
        let admin = user(&app, ADMIN).await;
        let (no, _) = nth_student(&app, JUNIOR, "21", 4).await;
        let s = app.student(&admin, &no).await.unwrap();
        let other_class = app
            .classes(&admin, JUNIOR)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.grade == "21" && Some(c.id) != s.summary.class_id)
            .unwrap()
            .id;
        let patch = StudentPatch {
            ethnicity: Some("回族".into()),
            class_id: Some(other_class),
            ..Default::default()
        };
        let after = app.update_student(&admin, &no, &patch).await.unwrap();
        assert_eq!(after.ethnicity, "03");
        assert_eq!(after.summary.class_id, Some(other_class));
        let key = StudentPatch {
            name: Some(serde_json::json!("新名字")),
            ..Default::default()
        };
        let e = app.update_student(&admin, &no, &key).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        assert_eq!(e.to_domain().field, Some("name"));
        let stale = StudentPatch {
            ethnicity: Some("01".into()),
            version: Some(0),
            ..Default::default()
        };
        assert_eq!(
            refused(app.update_student(&admin, &no, &stale).await),
            ErrorCode::Conflict
        );
        let reviewer = user(&app, REVIEWER).await;
        assert_eq!(
            refused(app.update_student(&reviewer, &no, &patch).await),
            ErrorCode::Forbidden
        );
        let outsider = user(&app, "4401060001-admin").await;
        assert_eq!(
            refused(app.update_student(&outsider, &no, &patch).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'student.update'"
            )
            .await,
            1
        );
        dispose(&app.db).await;
    }
}
