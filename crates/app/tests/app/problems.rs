//! 问题学籍处理: 佐证 / 变更 / 删除, each waiting for the supervising authority, on every backend.

use chrono::NaiveDate;
use xueji_app::App;
use xueji_app::auth::CurrentUser;
use xueji_app::identity::SimulatedIdentityService;
use xueji_app::problems::{ProblemActionRequest, ProblemDecision, ProblemFilter};
use xueji_app::registration::NewStudent;
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_domain::ErrorCode;
use xueji_domain::ids::{Gender, IdNumber};

use crate::{all, count, dispose, refused, user};

const SCHOOL: &str = "4101050001";

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Registers a 三年级 student at SCHOOL and lets the (simulated) identity check fail them as
/// `result`; answers the student number and the problem record's id.
async fn failed_student(app: &App, name: &str, id: &IdNumber, result: &str) -> (String, i64) {
    let admin = user(app, &format!("{SCHOOL}-admin")).await;
    let class = app
        .classes(&admin, SCHOOL)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.grade == "13")
        .unwrap()
        .id;
    let r = app
        .register_student(
            &admin,
            &NewStudent {
                name: name.into(),
                gender: if id.gender() == Gender::Male {
                    "male"
                } else {
                    "female"
                }
                .into(),
                birth_date: id.birth_date().to_string(),
                ethnicity: "01".into(),
                id_type: "1".into(),
                id_number: id.as_str().into(),
                grade: "13".into(),
                class_id: class,
                confirm_suspected: false,
            },
        )
        .await
        .expect("register");
    let sim = SimulatedIdentityService::from_csv(&format!(
        "id_number,result\n{},{result}\n",
        id.as_str()
    ))
    .unwrap();
    let report = app.run_identity_checks(&sim, 1000).await.unwrap();
    assert!(report.checked >= 1);
    let no = r.student.summary.student_no;
    let f = ProblemFilter {
        q: Some(no.clone()),
        ..Default::default()
    };
    let list = app.problems(&admin, &f, all()).await.unwrap();
    assert_eq!(list.total, 1, "one problem record for {no}");
    (no, list.items[0].id)
}

fn ask(action: &str, reason: &str) -> ProblemActionRequest {
    ProblemActionRequest {
        action: action.into(),
        reason: reason.into(),
        name: None,
        id_type: None,
        id_number: None,
        version: None,
    }
}

fn decide(decision: &str, opinion: &str) -> ProblemDecision {
    ProblemDecision {
        decision: decision.into(),
        opinion: opinion.into(),
    }
}

async fn authority_of_school(app: &App) -> CurrentUser {
    let admin = user(app, &format!("{SCHOOL}-admin")).await;
    let school = app.school(&admin, SCHOOL).await.unwrap();
    user(app, &format!("edu{}", school.authority)).await
}

#[tokio::test]
async fn confirm_with_evidence_issues_the_formal_number_after_approval() {
    for b in backends() {
        let app = demo_app(b).await;
        let id = IdNumber::from_parts("410105", d(2018, 4, 2), 601);
        let (no, pid) = failed_student(&app, "韩立新", &id, "not_found").await;
        let admin = user(&app, &format!("{SCHOOL}-admin")).await;
        let authority = authority_of_school(&app).await;
        let p = app.problem(&admin, pid).await.unwrap();
        assert_eq!(p.summary.kind, "id_not_found");
        assert_eq!(p.summary.status, "open");
        let evidence = vec![xueji_app::transfers::Evidence {
            filename: "户口簿.pdf".into(),
            bytes: b"%PDF-1.4 household register".to_vec(),
        }];
        let p = app
            .request_problem_action(
                &admin,
                pid,
                &ask("confirm", "户口簿显示身份证号码无误"),
                evidence,
            )
            .await
            .expect("request");
        assert_eq!(p.summary.status, "pending");
        assert_eq!(p.summary.pending_action.as_deref(), Some("confirm"));
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].evidence.len(), 1);
        // Nothing has changed yet; the student is locked by the open business.
        let st = app.student(&admin, &no).await.unwrap();
        assert_eq!(st.summary.student_no, no);
        assert_eq!(st.summary.open_business.as_deref(), Some("problem_record"));
        // A second action meanwhile is refused.
        assert_eq!(
            refused(
                app.request_problem_action(&admin, pid, &ask("delete", "重复"), vec![])
                    .await
            ),
            ErrorCode::Conflict
        );
        // The authority sees it on its work list, with a message.
        let todo = ProblemFilter {
            todo: Some(true),
            ..Default::default()
        };
        let list = app.problems(&authority, &todo, all()).await.unwrap();
        assert!(list.items.iter().any(|i| i.id == pid), "{b:?}");
        let msgs = app.notifications(&authority, false, all()).await.unwrap();
        assert!(msgs.items.iter().any(|m| m.kind == "problem_waiting"));
        let p = app
            .decide_problem_action(&authority, pid, &decide("approve", "材料齐全"))
            .await
            .expect("approve");
        assert_eq!(p.summary.status, "resolved");
        assert_eq!(p.summary.resolution.as_deref(), Some("confirmed"));
        assert_eq!(p.actions[0].status, "approved");
        assert_eq!(
            p.actions[0].decided_by.as_deref(),
            Some(authority.username.as_str())
        );
        // The formal number G + identity number; the L number kept in the history.
        let formal = format!("G{}", id.as_str());
        let st = app.student(&admin, &formal).await.unwrap();
        assert_eq!(st.summary.student_no, formal);
        assert_eq!(st.summary.open_business, None);
        assert_eq!(st.numbers.len(), 2);
        assert!(
            st.numbers
                .iter()
                .any(|n| n.student_no == no && n.replaced_at.is_some())
        );
        assert_eq!(
            count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) FROM identity_checks c JOIN students s ON s.id = c.student_id \
                 WHERE s.student_no = '{formal}' AND c.result = 'confirmed_by_evidence'"
                )
            )
            .await,
            1
        );
        let msgs = app.notifications(&admin, false, all()).await.unwrap();
        assert!(msgs.items.iter().any(|m| m.kind == "problem_approved"));
        assert_eq!(
            count(&app.db, &format!(
                "SELECT COUNT(*) FROM audit_log WHERE entity_type = 'problem_record' AND entity_id = '{pid}' \
                 AND action IN ('problem.request', 'problem.approve') AND after_json NOT LIKE '%{}%'",
                id.as_str()
            ))
            .await,
            2
        );
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_refusal_needs_an_opinion_reopens_the_record_and_changes_nothing() {
    for b in backends() {
        let app = demo_app(b).await;
        let id = IdNumber::from_parts("410105", d(2018, 5, 3), 611);
        let (no, pid) = failed_student(&app, "鲁一鸣", &id, "name_mismatch").await;
        let admin = user(&app, &format!("{SCHOOL}-admin")).await;
        let authority = authority_of_school(&app).await;
        assert_eq!(
            refused(
                app.request_problem_action(&admin, pid, &ask("delete", "  "), vec![])
                    .await
            ),
            ErrorCode::ReasonRequired
        );
        app.request_problem_action(&admin, pid, &ask("delete", "误录"), vec![])
            .await
            .unwrap();
        assert_eq!(
            refused(
                app.decide_problem_action(&authority, pid, &decide("refuse", ""))
                    .await
            ),
            ErrorCode::ReasonRequired
        );
        let p = app
            .decide_problem_action(
                &authority,
                pid,
                &decide("refuse", "该生确在本校就读，请核对后变更"),
            )
            .await
            .unwrap();
        assert_eq!(p.summary.status, "open");
        assert_eq!(p.actions[0].status, "refused");
        assert_eq!(
            p.actions[0].opinion.as_deref(),
            Some("该生确在本校就读，请核对后变更")
        );
        let st = app.student(&admin, &no).await.unwrap();
        assert_eq!(st.summary.status, "enrolled");
        assert_eq!(st.summary.open_business, None);
        // Deciding again: nothing is pending.
        assert_eq!(
            refused(
                app.decide_problem_action(&authority, pid, &decide("approve", ""))
                    .await
            ),
            ErrorCode::Conflict
        );
        let msgs = app.notifications(&admin, false, all()).await.unwrap();
        assert!(msgs.items.iter().any(|m| m.kind == "problem_refused"));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_correction_is_checked_for_duplicates_and_sent_back_to_the_identity_check() {
    for b in backends() {
        let app = demo_app(b).await;
        let id = IdNumber::from_parts("410105", d(2018, 6, 4), 621);
        let (no, pid) = failed_student(&app, "孟子涵", &id, "name_mismatch").await;
        let admin = user(&app, &format!("{SCHOOL}-admin")).await;
        let authority = authority_of_school(&app).await;
        // A number somebody else holds is refused at once.
        let other = app
            .students(&admin, &StudentFilter::default(), all())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|s| s.student_no.starts_with('G'))
            .unwrap();
        let mut dup = ask("correct", "证件号码录入错误");
        dup.id_number = Some(other.student_no[1..].to_string());
        assert_eq!(
            refused(app.request_problem_action(&admin, pid, &dup, vec![]).await),
            ErrorCode::DuplicatePerson
        );
        // A bad check digit is refused as at registration.
        let mut bad = ask("correct", "证件号码录入错误");
        let mut wrong = id.as_str().to_string();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(17..18, last);
        bad.id_number = Some(wrong);
        assert_eq!(
            refused(app.request_problem_action(&admin, pid, &bad, vec![]).await),
            ErrorCode::InvalidIdNumber
        );
        // The corrected number must agree with the recorded birth date.
        let mut born_else = ask("correct", "证件号码录入错误");
        born_else.id_number = Some(
            IdNumber::from_parts("410105", d(2018, 6, 5), 621)
                .as_str()
                .into(),
        );
        assert_eq!(
            refused(
                app.request_problem_action(&admin, pid, &born_else, vec![])
                    .await
            ),
            ErrorCode::ValidationFailed
        );
        let fixed = IdNumber::from_parts("410105", d(2018, 6, 4), 631);
        let mut ok = ask("correct", "姓名与证件号码均按户口簿更正");
        ok.name = Some("孟子晗".into());
        ok.id_number = Some(fixed.as_str().into());
        let p = app
            .request_problem_action(&admin, pid, &ok, vec![])
            .await
            .unwrap();
        assert_eq!(p.actions[0].new_name.as_deref(), Some("孟子晗"));
        // Not yet applied.
        assert_eq!(
            app.student(&admin, &no).await.unwrap().summary.name,
            "孟子涵"
        );
        let p = app
            .decide_problem_action(&authority, pid, &decide("approve", ""))
            .await
            .unwrap();
        assert_eq!(p.summary.resolution.as_deref(), Some("corrected"));
        let st = app.student(&admin, &no).await.unwrap();
        assert_eq!(st.summary.name, "孟子晗");
        assert_eq!(st.id_number.as_deref(), Some(fixed.as_str()));
        // Back in the identity check's queue; a pass gives the formal number of the new document.
        assert_eq!(
            count(&app.db, &format!(
                "SELECT COUNT(*) FROM students WHERE student_no = '{no}' AND identity_status = 'pending'"
            ))
            .await,
            1
        );
        app.run_identity_checks(SimulatedIdentityService::shared(), 1000)
            .await
            .unwrap();
        let st = app.student(&admin, &no).await.unwrap();
        assert_eq!(st.summary.student_no, format!("G{}", fixed.as_str()));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_deletion_keeps_the_history_and_releases_the_document() {
    for b in backends() {
        let app = demo_app(b).await;
        let id = IdNumber::from_parts("410105", d(2018, 7, 5), 641);
        let (no, pid) = failed_student(&app, "欧阳晨", &id, "not_found").await;
        let admin = user(&app, &format!("{SCHOOL}-admin")).await;
        let authority = authority_of_school(&app).await;
        app.request_problem_action(&admin, pid, &ask("delete", "测试时误录的学籍"), vec![])
            .await
            .unwrap();
        let p = app
            .decide_problem_action(&authority, pid, &decide("approve", "同意删除"))
            .await
            .unwrap();
        assert_eq!(p.summary.resolution.as_deref(), Some("deleted"));
        assert_eq!(p.summary.student_status, "deleted");
        // Gone from the school's list, but the archive stays readable by the school.
        let f = StudentFilter {
            q: Some(no.clone()),
            ..Default::default()
        };
        assert_eq!(app.students(&admin, &f, all()).await.unwrap().total, 0);
        let st = app.student(&admin, &no).await.expect("archive kept");
        assert_eq!(st.summary.status, "deleted");
        assert_eq!(st.enrollments[0].status, "deleted");
        assert!(st.enrollments[0].ended_at.is_some());
        assert!(st.numbers.iter().all(|n| n.replaced_at.is_some()));
        // Still listed as a resolved problem record for the school.
        let f = ProblemFilter {
            status: Some("resolved".into()),
            ..Default::default()
        };
        assert!(
            app.problems(&admin, &f, all())
                .await
                .unwrap()
                .items
                .iter()
                .any(|i| i.id == pid)
        );
        // The document is free for a correct registration.
        let class = app
            .classes(&admin, SCHOOL)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.grade == "13")
            .unwrap()
            .id;
        let again = app
            .register_student(
                &admin,
                &NewStudent {
                    name: "欧阳晨".into(),
                    gender: "male".into(),
                    birth_date: "2018-07-05".into(),
                    ethnicity: "01".into(),
                    id_type: "1".into(),
                    id_number: id.as_str().into(),
                    grade: "13".into(),
                    class_id: class,
                    confirm_suspected: true,
                },
            )
            .await;
        assert!(again.is_ok(), "{b:?}: {:?}", again.err());
        dispose(&app.db).await;
    }
}

/// A suspected duplicate confirmed at registration, then found to be the same person: the new
/// record is deleted, leaves the identity check's queue, and the suspicion is resolved.
#[tokio::test]
async fn deleting_a_confirmed_suspected_duplicate_takes_it_out_of_the_identity_queue() {
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, &format!("{SCHOOL}-admin")).await;
        let authority = authority_of_school(&app).await;
        // A student on record, registered again under a passport by mistake.
        let existing = app
            .students(&admin, &StudentFilter::default(), all())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|s| s.grade.as_deref() == Some("13"))
            .unwrap();
        let class = existing.class_id.unwrap();
        let r = app
            .register_student(
                &admin,
                &NewStudent {
                    name: existing.name.clone(),
                    gender: existing.gender.clone(),
                    birth_date: existing.birth_date.to_string(),
                    ethnicity: "01".into(),
                    id_type: "1".into(),
                    id_number: IdNumber::from_parts(
                        "410105",
                        existing.birth_date,
                        if existing.gender == "male" { 991 } else { 992 },
                    )
                    .as_str()
                    .into(),
                    grade: "13".into(),
                    class_id: class,
                    confirm_suspected: true,
                },
            )
            .await
            .expect("registered after confirmation");
        assert_eq!(r.identity_status, "pending");
        let no = r.student.summary.student_no;
        let f = ProblemFilter {
            q: Some(no.clone()),
            kind: Some("suspected_duplicate".into()),
            ..Default::default()
        };
        let p = app.problems(&admin, &f, all()).await.unwrap();
        assert_eq!(p.total, 1);
        let pid = p.items[0].id;
        let detail = app.problem(&admin, pid).await.unwrap();
        assert_eq!(
            detail.related_student_no.as_deref(),
            Some(existing.student_no.as_str())
        );
        app.request_problem_action(&admin, pid, &ask("delete", "与已有学籍为同一人"), vec![])
            .await
            .unwrap();
        app.decide_problem_action(&authority, pid, &decide("approve", ""))
            .await
            .unwrap();
        assert_eq!(
            count(&app.db, &format!(
                "SELECT COUNT(*) FROM students s JOIN student_numbers n ON n.student_id = s.id \
                 WHERE n.student_no = '{no}' AND s.status = 'deleted' AND s.identity_status = 'not_applicable'"
            ))
            .await,
            1
        );
        let report = app
            .run_identity_checks(SimulatedIdentityService::shared(), 10_000)
            .await
            .unwrap();
        assert_eq!(report.pending, 0, "{b:?}: nothing left in the queue");
        // The record on file is untouched.
        let st = app.student(&admin, &existing.student_no).await.unwrap();
        assert_eq!(st.summary.status, "enrolled");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn problem_records_are_scoped_and_only_the_right_parties_act() {
    for b in backends() {
        let app = demo_app(b).await;
        let id = IdNumber::from_parts("410105", d(2018, 8, 6), 651);
        let (_, pid) = failed_student(&app, "闻人杰", &id, "not_found").await;
        let admin = user(&app, &format!("{SCHOOL}-admin")).await;
        let reviewer = user(&app, &format!("{SCHOOL}-reviewer")).await;
        let other_school = user(&app, "4101020001-admin").await;
        let other_county = user(&app, "edu410102").await;
        let province = user(&app, "edu410000").await;
        let authority = authority_of_school(&app).await;
        // Outsiders neither see nor find it.
        assert_eq!(
            refused(app.problem(&other_school, pid).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            refused(app.problem(&other_county, pid).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            app.problems(&other_county, &ProblemFilter::default(), all())
                .await
                .unwrap()
                .items
                .iter()
                .filter(|i| i.id == pid)
                .count(),
            0
        );
        assert_eq!(
            refused(
                app.request_problem_action(&other_school, pid, &ask("confirm", "x"), vec![])
                    .await
            ),
            ErrorCode::NotFound
        );
        // Inside the school, only the administrator files.
        assert_eq!(
            refused(
                app.request_problem_action(&reviewer, pid, &ask("confirm", "x"), vec![])
                    .await
            ),
            ErrorCode::Forbidden
        );
        // The province sees it (filtered by kind) but is not the supervising authority.
        let f = ProblemFilter {
            kind: Some("id_not_found".into()),
            status: Some("open".into()),
            ..Default::default()
        };
        let list = app.problems(&province, &f, all()).await.unwrap();
        assert!(list.items.iter().any(|i| i.id == pid));
        assert!(
            list.items
                .iter()
                .all(|i| i.kind == "id_not_found" && i.status == "open")
        );
        assert_eq!(list.total as usize, list.items.len());
        let wrong = ProblemFilter {
            kind: Some("nonsense".into()),
            ..Default::default()
        };
        assert_eq!(
            refused(app.problems(&province, &wrong, all()).await),
            ErrorCode::ValidationFailed
        );
        app.request_problem_action(&admin, pid, &ask("confirm", "户口簿为证"), vec![])
            .await
            .unwrap();
        assert_eq!(
            refused(
                app.decide_problem_action(&province, pid, &decide("approve", ""))
                    .await
            ),
            ErrorCode::NotYourTurn
        );
        assert_eq!(
            refused(
                app.decide_problem_action(&admin, pid, &decide("approve", ""))
                    .await
            ),
            ErrorCode::Forbidden
        );
        // The supervising authority decides.
        app.decide_problem_action(&authority, pid, &decide("approve", ""))
            .await
            .unwrap();
        dispose(&app.db).await;
    }
}

/// 疑似重复 within one import file: the same name, gender and birth date as an earlier row with
/// another document is reported (unless confirmed), like a suspected duplicate on record.
#[tokio::test]
async fn an_import_reports_suspected_duplicates_within_the_file() {
    use rust_xlsxwriter::Workbook;
    use xueji_app::import::{Commit, HEADERS, ImportOptions, XlsxSource, no_progress};
    let born = d(2018, 3, 3);
    let a = IdNumber::from_parts("410105", born, 741);
    let b2 = IdNumber::from_parts("410105", born, 751);
    let c = IdNumber::from_parts("410105", born, 761);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    for (col, h) in HEADERS.iter().enumerate() {
        ws.write_string(0, col as u16, *h).unwrap();
    }
    for (r, (name, id)) in [("夏侯明", &a), ("诸葛亮亮", &b2), ("夏侯明", &c)]
        .into_iter()
        .enumerate()
    {
        let row = (r + 1) as u32;
        let cells = [
            name,
            "男",
            "2018-03-03",
            "汉族",
            "居民身份证",
            id.as_str(),
            "三年级",
            "三年级（1）班",
        ];
        for (col, v) in cells.iter().enumerate() {
            ws.write_string(row, col as u16, *v).unwrap();
        }
    }
    let bytes = std::sync::Arc::new(wb.save_to_buffer().unwrap());
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, &format!("{SCHOOL}-admin")).await;
        let opts = |confirm| ImportOptions {
            commit: Commit::Never,
            confirm_suspected: confirm,
        };
        let r = app
            .import_students(
                &admin,
                SCHOOL,
                XlsxSource::Bytes(bytes.clone()),
                opts(false),
                &no_progress,
            )
            .await
            .unwrap();
        assert_eq!(
            (r.rows, r.valid, r.invalid),
            (3, 2, 1),
            "{b:?}: {:?}",
            r.errors
        );
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].row, 4);
        assert_eq!(r.errors[0].column, "姓名");
        assert!(
            r.errors[0].message.contains("第2行"),
            "{}",
            r.errors[0].message
        );
        assert!(r.errors[0].message.contains("疑似重复"));
        let r = app
            .import_students(
                &admin,
                SCHOOL,
                XlsxSource::Bytes(bytes.clone()),
                opts(true),
                &no_progress,
            )
            .await
            .unwrap();
        assert_eq!((r.valid, r.invalid), (3, 0));
        dispose(&app.db).await;
    }
}
