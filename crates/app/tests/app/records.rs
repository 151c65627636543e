//! 学籍注册, Excel import and export, 查重, 公安比对 and formal numbers, on every backend.

use std::sync::Arc;

use chrono::NaiveDate;
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};
use xueji_app::App;
use xueji_app::auth::CurrentUser;
use xueji_app::identity::{IdentityResult, SimulatedIdentityService};
use xueji_app::import::{Commit, ImportOptions, ImportReport, XlsxSource, no_progress};
use xueji_app::registration::NewStudent;
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_domain::ErrorCode;
use xueji_domain::ids::{IdNumber, StudentNo, StudentNoKind};

use crate::{all, count, dispose, exec, refused, user};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
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

/// A valid application for grade 13 (born 2018 fits 三年级 in school year 2026).
fn new_student(name: &str, id: &IdNumber, class_id: i64) -> NewStudent {
    NewStudent {
        name: name.into(),
        gender: if id.gender() == xueji_domain::ids::Gender::Male {
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
        class_id,
        confirm_suspected: false,
    }
}

/// The code and field of a refusal.
fn refusal<T>(r: xueji_app::AppResult<T>) -> (ErrorCode, Option<&'static str>, String) {
    match r {
        Ok(_) => panic!("expected a refusal"),
        Err(xueji_app::AppError::Domain(e)) => (e.code, e.field, e.message),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn registration_assigns_a_temporary_number_and_is_audited() {
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, "4101050001-admin").await;
        let class = class_of(&app, &admin, "4101050001", "13").await;
        let id = IdNumber::from_parts("410104", d(2018, 3, 1), 351);
        let before = count(&app.db, "SELECT COUNT(*) FROM students").await;
        let r = app
            .register_student(&admin, &new_student("周明远", &id, class))
            .await
            .expect("register");
        let no = r.student.summary.student_no.clone();
        // L + the school's area code + birth date + 4 digits.
        assert_eq!(no.len(), 19, "{b:?}");
        assert!(no.starts_with("L41010520180301"), "{no}");
        assert!(no[15..].bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(
            StudentNo::parse(&no).unwrap().kind(),
            StudentNoKind::Temporary
        );
        assert_eq!(r.identity_status, "pending");
        assert_eq!(r.student.summary.status, "enrolled");
        assert_eq!(
            r.student.id_number.as_deref(),
            Some(id.as_str()),
            "the own school sees the number"
        );
        assert_eq!(r.student.numbers.len(), 1);
        assert_eq!(r.student.numbers[0].kind, "temporary");
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM students").await,
            before + 1
        );
        // Visible in the school's list, masked.
        let f = StudentFilter {
            q: Some(no.clone()),
            ..Default::default()
        };
        let list = app.students(&admin, &f, all()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(
            list.items[0].id_number_masked,
            format!("410104********{}", &id.as_str()[14..])
        );
        assert_eq!(list.items[0].class_id, Some(class));
        // One audit row, without the whole number.
        let sql = format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'student.register' AND entity_id = '{no}' \
             AND actor_name = '4101050001-admin' AND after_json NOT LIKE '%{}%'",
            id.as_str()
        );
        assert_eq!(count(&app.db, &sql).await, 1, "{b:?}");
        assert_eq!(
            count(&app.db, &format!("SELECT COUNT(*) FROM enrollments e JOIN students s ON s.id = e.student_id WHERE s.student_no = '{no}' AND e.status = 'active'")).await,
            1
        );
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn registration_refuses_each_wrong_field_and_writes_nothing() {
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, "4101050001-admin").await;
        let class = class_of(&app, &admin, "4101050001", "13").await;
        let students = count(&app.db, "SELECT COUNT(*) FROM students").await;
        let audits = count(
            &app.db,
            "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'student.%'",
        )
        .await;
        let id = IdNumber::from_parts("410104", d(2018, 3, 1), 351);
        let good = new_student("周明远", &id, class);

        // A wrong check digit.
        let mut bad = good.clone();
        let last = if id.as_str().ends_with('0') { '1' } else { '0' };
        bad.id_number = format!("{}{last}", &id.as_str()[..17]);
        let (code, field, msg) = refusal(app.register_student(&admin, &bad).await);
        assert_eq!(
            (code, field),
            (ErrorCode::InvalidIdNumber, Some("id_number")),
            "{b:?}"
        );
        assert!(msg.contains("校验位"), "{msg}");

        // A region prefix that is no known province (71: the number format allows it, the
        // region table does not hold it).
        let mut bad = good.clone();
        bad.id_number = IdNumber::from_parts("710101", d(2018, 3, 1), 351)
            .as_str()
            .into();
        assert_eq!(
            refusal(app.register_student(&admin, &bad).await).0,
            ErrorCode::InvalidIdNumber
        );

        // Birth date and gender against the number.
        let mut bad = good.clone();
        bad.birth_date = "2018-03-02".into();
        let (code, field, msg) = refusal(app.register_student(&admin, &bad).await);
        assert_eq!(
            (code, field),
            (ErrorCode::ValidationFailed, Some("birth_date"))
        );
        assert!(msg.contains("2018-03-01"), "{msg}");
        let mut bad = good.clone();
        bad.gender = "female".into();
        assert_eq!(
            refusal(app.register_student(&admin, &bad).await).1,
            Some("gender")
        );

        // An age implausible for the grade: born 2012 is 14 in 三年级.
        let older = IdNumber::from_parts("410104", d(2012, 3, 1), 351);
        let (code, field, msg) = refusal(
            app.register_student(&admin, &new_student("周明远", &older, class))
                .await,
        );
        assert_eq!(
            (code, field),
            (ErrorCode::ValidationFailed, Some("birth_date"))
        );
        assert!(msg.contains("年级"), "{msg}");

        // A class of another school, and a class of another grade.
        let other = user(&app, "4401060001-admin").await;
        let foreign = class_of(&app, &other, "4401060001", "13").await;
        let (code, field, _) = refusal(
            app.register_student(&admin, &new_student("周明远", &id, foreign))
                .await,
        );
        assert_eq!(
            (code, field),
            (ErrorCode::ValidationFailed, Some("class_id"))
        );
        let grade_one = class_of(&app, &admin, "4101050001", "11").await;
        assert_eq!(
            refusal(
                app.register_student(&admin, &new_student("周明远", &id, grade_one))
                    .await
            )
            .1,
            Some("class_id")
        );

        // Unknown codes, an empty name, an unreadable date.
        for (f, edit) in [
            (
                "ethnicity",
                Box::new(|s: &mut NewStudent| s.ethnicity = "99".into())
                    as Box<dyn Fn(&mut NewStudent)>,
            ),
            (
                "id_type",
                Box::new(|s: &mut NewStudent| s.id_type = "Q".into()),
            ),
            ("name", Box::new(|s: &mut NewStudent| s.name = " ".into())),
            (
                "birth_date",
                Box::new(|s: &mut NewStudent| s.birth_date = "2018.03.01".into()),
            ),
            (
                "grade",
                Box::new(|s: &mut NewStudent| s.grade = "17".into()),
            ),
        ] {
            let mut bad = good.clone();
            edit(&mut bad);
            assert_eq!(
                refusal(app.register_student(&admin, &bad).await).1,
                Some(f),
                "{f}"
            );
        }

        // A full class.
        exec(
            &app.db,
            &format!("UPDATE classes SET capacity = 4 WHERE id = {class}"),
        )
        .await
        .unwrap();
        assert_eq!(
            refusal(app.register_student(&admin, &good).await).0,
            ErrorCode::ClassFull
        );
        exec(
            &app.db,
            &format!("UPDATE classes SET capacity = 45 WHERE id = {class}"),
        )
        .await
        .unwrap();

        // Only the school's administrator registers.
        let reviewer = user(&app, "4101050001-reviewer").await;
        assert_eq!(
            refused(app.register_student(&reviewer, &good).await),
            ErrorCode::Forbidden
        );
        let authority = user(&app, "edu410105").await;
        assert_eq!(
            refused(app.register_student(&authority, &good).await),
            ErrorCode::Forbidden
        );

        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM students").await,
            students,
            "{b:?}"
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'student.%'"
            )
            .await,
            audits,
            "{b:?}"
        );
        // And the good one goes through.
        app.register_student(&admin, &good).await.expect("register");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn one_person_one_record_nationwide() {
    for b in backends() {
        let app = demo_app(b).await;
        let henan = user(&app, "4101050001-admin").await;
        let guangdong = user(&app, "4401060001-admin").await;
        let id = IdNumber::from_parts("410104", d(2018, 3, 1), 351);
        let c1 = class_of(&app, &henan, "4101050001", "13").await;
        let c2 = class_of(&app, &guangdong, "4401060001", "13").await;
        app.register_student(&henan, &new_student("周明远", &id, c1))
            .await
            .expect("first");
        // The same document at a school of another province.
        let (code, field, msg) = refusal(
            app.register_student(&guangdong, &new_student("周明远", &id, c2))
                .await,
        );
        assert_eq!(
            (code, field),
            (ErrorCode::DuplicatePerson, Some("id_number")),
            "{b:?}"
        );
        assert!(msg.contains("该学生已在其他学校有学籍"), "{msg}");
        assert!(
            !msg.contains("4101050001") && !msg.contains("金水"),
            "names nothing of the other school: {msg}"
        );
        assert_eq!(ErrorCode::DuplicatePerson.http_status(), 409);
        // Again at the same school.
        let (code, _, msg) = refusal(
            app.register_student(&henan, &new_student("周明远", &id, c1))
                .await,
        );
        assert_eq!(code, ErrorCode::DuplicatePerson);
        assert!(msg.contains("本校"), "{msg}");
        // The unique key refuses it too.
        let dup = exec(
            &app.db,
            &format!(
                "INSERT INTO students (student_no, id_type, id_number, name, gender, birth_date, ethnicity, status, version, created_at, updated_at) \
                 VALUES ('L440106201803010001', '1', '{}', '周明远', '1', '2018-03-01', '01', 'enrolled', 0, '2026-11-02 01:00:00', '2026-11-02 01:00:00')",
                id.as_str()
            ),
        )
        .await;
        let e = dup.expect_err("the unique key refuses a second record");
        assert!(e.to_string().to_lowercase().contains("unique"), "{e}");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_suspected_duplicate_needs_a_confirmation_that_is_recorded() {
    for b in backends() {
        let app = demo_app(b).await;
        // A demo student of another school: same name, gender and birth date, another number.
        let (name, gender, birth): (String, String, NaiveDate) = xueji_app::on_pool!(app.db.read(), p => sqlx::query_as(
            "SELECT s.name, s.gender, s.birth_date FROM students s JOIN schools sc ON sc.id = s.school_id \
             WHERE sc.code = '4401060001' AND s.grade = '13' ORDER BY s.id LIMIT 1"
        ).fetch_one(p).await).unwrap();
        let admin = user(&app, "4101050001-admin").await;
        let class = class_of(&app, &admin, "4101050001", "13").await;
        let seq = if gender == "1" { 771 } else { 772 };
        let id = IdNumber::from_parts("410104", birth, seq);
        let mut req = new_student(&name, &id, class);
        let students = count(&app.db, "SELECT COUNT(*) FROM students").await;
        let (code, field, msg) = refusal(app.register_student(&admin, &req).await);
        assert_eq!(
            (code, field),
            (ErrorCode::SuspectedDuplicate, Some("name")),
            "{b:?}"
        );
        assert_eq!(
            ErrorCode::SuspectedDuplicate.as_str(),
            "suspected_duplicate"
        );
        assert_eq!(ErrorCode::SuspectedDuplicate.http_status(), 409);
        assert!(
            msg.contains("疑似重复") && msg.contains("440106********"),
            "masked match listed: {msg}"
        );
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM students").await,
            students
        );

        req.confirm_suspected = true;
        let r = app.register_student(&admin, &req).await.expect("confirmed");
        assert_eq!(r.suspected_confirmed.len(), 1);
        let no = r.student.summary.student_no;
        assert_eq!(
            count(&app.db, &format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'student.register' AND entity_id = '{no}' \
                 AND after_json LIKE '%\"confirm_suspected\":true%' AND after_json LIKE '%suspected_duplicates_confirmed%'"
            )).await,
            1,
            "{b:?}"
        );
        assert_eq!(
            count(&app.db, &format!(
                "SELECT COUNT(*) FROM problem_records pr JOIN students s ON s.id = pr.student_id \
                 WHERE s.student_no = '{no}' AND pr.kind = 'suspected_duplicate' AND pr.status = 'open' AND pr.related_student_id IS NOT NULL"
            )).await,
            1
        );
        dispose(&app.db).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Excel import

const IMPORT_SCHOOL: &str = "4101050002";
const ROWS: u32 = 10_000;

/// Generated names that no demo student has: 天干 characters for the digits of `i`.
fn name_of(i: u32) -> String {
    const CH: [char; 10] = ['甲', '乙', '丙', '丁', '戊', '己', '庚', '辛', '壬', '癸'];
    let mut s = String::from("测");
    for c in format!("{i:05}").chars() {
        s.push(CH[c.to_digit(10).unwrap() as usize]);
    }
    s
}

/// Row `i` (0-based data row) of the generated file: a valid 三年级 student.
fn person_of(i: u32) -> (String, IdNumber) {
    let birth = d(2017, 9, 2) + chrono::Duration::days(i64::from(i % 365));
    let id = IdNumber::from_parts("410104", birth, (i / 365) as u16 * 2 + 1);
    (name_of(i), id)
}

/// What the generated file does wrong, by 0-based data row (sheet row = data row + 1, Excel row =
/// data row + 2).
struct Plan {
    bad_check_digit: u32,
    dup_first: u32,
    dup_second: u32,
    in_database: u32,
    unknown_class: u32,
    empty_field: u32,
    bad_date: u32,
    formula: u32,
    merged: u32,
    /// Rows written with the other accepted date forms.
    excel_date: u32,
    slash_date: u32,
    compact_date: u32,
}

const PLAN: Plan = Plan {
    bad_check_digit: 10,
    dup_first: 100,
    dup_second: 9_000,
    in_database: 2_000,
    unknown_class: 3_000,
    empty_field: 4_000,
    bad_date: 5_000,
    formula: 6_000,
    merged: 7_000,
    excel_date: 20,
    slash_date: 21,
    compact_date: 22,
};

fn import_file(demo_id: &IdNumber) -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("学生信息").unwrap();
    for (c, h) in xueji_app::import::HEADERS.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let date_format = Format::new().set_num_format("yyyy-mm-dd");
    for i in 0..ROWS {
        let r = i + 1;
        let (mut name, mut id) = person_of(i);
        if i == PLAN.dup_second {
            id = person_of(PLAN.dup_first).1;
            name = "测重复".into();
        }
        if i == PLAN.in_database {
            id = demo_id.clone();
        }
        let mut number = id.as_str().to_string();
        if i == PLAN.bad_check_digit {
            let last = if number.ends_with('0') { '1' } else { '0' };
            number = format!("{}{last}", &number[..17]);
        }
        let class = if i % 2 == 0 {
            "三年级（1）班"
        } else {
            "三年级（2）班"
        };
        let cells = [
            name.as_str(),
            if id.gender() == xueji_domain::ids::Gender::Male {
                "男"
            } else {
                "女"
            },
            "",
            if i == PLAN.empty_field { "" } else { "汉族" },
            "居民身份证",
            number.as_str(),
            "三年级",
            if i == PLAN.unknown_class {
                "三年级（9）班"
            } else {
                class
            },
        ];
        for (c, v) in cells.iter().enumerate() {
            if !v.is_empty() {
                ws.write_string(r, c as u16, *v).unwrap();
            }
        }
        let birth = id.birth_date();
        if i == PLAN.excel_date {
            let dt = ExcelDateTime::from_ymd(
                birth.year_ce().1 as u16,
                birth.month0() as u8 + 1,
                birth.day0() as u8 + 1,
            )
            .unwrap();
            ws.write_datetime_with_format(r, 2, &dt, &date_format)
                .unwrap();
        } else {
            let text = match i {
                x if x == PLAN.bad_date => birth.format("%Y.%m.%d").to_string(),
                x if x == PLAN.slash_date => birth.format("%Y/%m/%d").to_string(),
                x if x == PLAN.compact_date => birth.format("%Y%m%d").to_string(),
                _ => birth.to_string(),
            };
            ws.write_string(r, 2, &text).unwrap();
        }
        if i == PLAN.formula {
            ws.write_formula(r, 0, Formula::new("=\"测\"&\"公式\""))
                .unwrap();
        }
    }
    // 年级 merged over two rows.
    let m = PLAN.merged + 1;
    ws.merge_range(m, 6, m + 1, 6, "三年级", &Format::new())
        .unwrap();
    wb.save_to_buffer().unwrap()
}

use chrono::Datelike;

/// (Excel row, column) of every error of the generated file, in report order.
fn expected_errors() -> Vec<(u32, &'static str)> {
    let x = |i: u32| i + 2;
    let mut v = vec![
        (x(PLAN.bad_check_digit), "证件号码"),
        (x(PLAN.dup_first), "证件号码"),
        (x(PLAN.in_database), "证件号码"),
        (x(PLAN.unknown_class), "班级"),
        (x(PLAN.empty_field), "民族"),
        (x(PLAN.bad_date), "出生日期"),
        (x(PLAN.formula), "姓名"),
        (x(PLAN.merged), "年级"),
        (x(PLAN.merged + 1), "年级"),
        (x(PLAN.dup_second), "证件号码"),
    ];
    v.sort();
    v
}

fn message_at<'a>(r: &'a ImportReport, row: u32, column: &str) -> &'a str {
    &r.errors
        .iter()
        .find(|e| e.row == row && e.column == column)
        .expect("error listed")
        .message
}

#[tokio::test]
async fn import_of_ten_thousand_rows_reports_every_wrong_row_then_writes_exactly_the_valid_ones() {
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, &format!("{IMPORT_SCHOOL}-admin")).await;
        exec(&app.db, &format!(
            "UPDATE classes SET capacity = 20000 WHERE school_id = (SELECT id FROM schools WHERE code = '{IMPORT_SCHOOL}')"
        )).await.unwrap();
        let demo_id: String = xueji_app::on_pool!(app.db.read(), p => sqlx::query_scalar(
            "SELECT s.id_number FROM students s JOIN schools sc ON sc.id = s.school_id \
             WHERE sc.code = '4401060001' AND s.grade = '13' ORDER BY s.id LIMIT 1"
        ).fetch_one(p).await)
        .unwrap();
        let demo_id = IdNumber::parse(&demo_id).unwrap();
        let bytes = Arc::new(import_file(&demo_id));
        let students = count(&app.db, "SELECT COUNT(*) FROM students").await;
        let audits = count(&app.db, "SELECT COUNT(*) FROM audit_log").await;
        let progress_calls = std::sync::atomic::AtomicU64::new(0);
        let progress = |_: xueji_app::import::ImportProgress| {
            progress_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };

        // Validation only: the report, nothing written.
        let opts = ImportOptions {
            commit: Commit::Never,
            confirm_suspected: false,
        };
        let r = app
            .import_students(
                &admin,
                IMPORT_SCHOOL,
                XlsxSource::Bytes(bytes.clone()),
                opts,
                &progress,
            )
            .await
            .expect("report");
        let got: Vec<(u32, &str)> = r
            .errors
            .iter()
            .map(|e| (e.row, e.column.as_str()))
            .collect();
        assert_eq!(got, expected_errors(), "{b:?}: {:#?}", r.errors);
        let invalid_rows = 10; // 9 rows above + the duplicate's first row
        assert_eq!(
            (r.rows, r.invalid, r.valid, r.written),
            (10_000, invalid_rows, 10_000 - invalid_rows, 0),
            "{b:?}"
        );
        assert!(!r.committed);
        assert_eq!(r.errors_total, 10);
        assert!(progress_calls.load(std::sync::atomic::Ordering::Relaxed) >= 20);
        let x = |i: u32| i + 2;
        assert!(message_at(&r, x(PLAN.bad_check_digit), "证件号码").contains("校验位"));
        assert_eq!(
            r.errors
                .iter()
                .find(|e| e.row == x(PLAN.bad_check_digit))
                .unwrap()
                .cell,
            format!("F{}", x(PLAN.bad_check_digit))
        );
        assert!(
            message_at(&r, x(PLAN.dup_first), "证件号码")
                .contains(&format!("与第{}行", x(PLAN.dup_second)))
        );
        assert!(
            message_at(&r, x(PLAN.dup_second), "证件号码")
                .contains(&format!("与第{}行", x(PLAN.dup_first)))
        );
        assert!(
            message_at(&r, x(PLAN.in_database), "证件号码").contains("该学生已在其他学校有学籍")
        );
        assert!(message_at(&r, x(PLAN.unknown_class), "班级").contains("三年级（9）班"));
        assert!(message_at(&r, x(PLAN.empty_field), "民族").contains("不能为空"));
        assert!(message_at(&r, x(PLAN.bad_date), "出生日期").contains("YYYY-MM-DD"));
        assert!(message_at(&r, x(PLAN.formula), "姓名").contains("粘贴为数值"));
        let merged = format!("G{}:G{}", x(PLAN.merged), x(PLAN.merged) + 1);
        assert!(message_at(&r, x(PLAN.merged), "年级").contains(&merged));
        assert!(message_at(&r, x(PLAN.merged) + 1, "年级").contains("合并单元格"));
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM students").await,
            students,
            "nothing written ({b:?})"
        );
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM audit_log").await,
            audits
        );

        // The CLI's default: nothing when any row is wrong.
        let opts = ImportOptions {
            commit: Commit::IfAllValid,
            confirm_suspected: false,
        };
        let r = app
            .import_students(
                &admin,
                IMPORT_SCHOOL,
                XlsxSource::Bytes(bytes.clone()),
                opts,
                &no_progress,
            )
            .await
            .unwrap();
        assert_eq!((r.written, r.committed), (0, false));
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM students").await,
            students
        );

        // The report as a workbook.
        let xlsx = xueji_app::import::import_report_xlsx(&r).unwrap();
        assert!(xlsx.starts_with(b"PK"));

        // Commit the valid rows: exactly those.
        let opts = ImportOptions {
            commit: Commit::ValidRows,
            confirm_suspected: false,
        };
        let r = app
            .import_students(
                &admin,
                IMPORT_SCHOOL,
                XlsxSource::Bytes(bytes.clone()),
                opts,
                &no_progress,
            )
            .await
            .unwrap();
        assert_eq!(
            (r.written, r.valid, r.invalid),
            (10_000 - invalid_rows, 10_000 - invalid_rows, invalid_rows),
            "{b:?}"
        );
        assert!(r.committed);
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM students").await,
            students + (10_000 - invalid_rows) as i64
        );
        let imported = |i: u32| {
            let id = person_of(i).1;
            format!(
                "SELECT COUNT(*) FROM students WHERE id_number = '{}'",
                id.as_str()
            )
        };
        for i in [
            0,
            PLAN.excel_date,
            PLAN.slash_date,
            PLAN.compact_date,
            ROWS - 1,
        ] {
            assert_eq!(count(&app.db, &imported(i)).await, 1, "row {i} written");
        }
        for i in [
            PLAN.dup_first,
            PLAN.unknown_class,
            PLAN.empty_field,
            PLAN.bad_date,
            PLAN.formula,
            PLAN.merged,
            PLAN.merged + 1,
        ] {
            assert_eq!(count(&app.db, &imported(i)).await, 0, "row {i} not written");
        }
        // Each record: a temporary number, an enrollment, its audit row (plus one per batch).
        let school_students = format!(
            "SELECT COUNT(*) FROM students s JOIN schools sc ON sc.id = s.school_id WHERE sc.code = '{IMPORT_SCHOOL}' \
             AND s.identity_status = 'pending' AND s.student_no LIKE 'L410105%'"
        );
        assert_eq!(
            count(&app.db, &school_students).await,
            (10_000 - invalid_rows) as i64
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM student_numbers WHERE kind = 'temporary'"
            )
            .await,
            (10_000 - invalid_rows) as i64
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'student.register'"
            )
            .await,
            (10_000 - invalid_rows) as i64
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'student.import_batch'"
            )
            .await,
            20
        );
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));

        // Importing the same file again: every row is now on record.
        let opts = ImportOptions {
            commit: Commit::ValidRows,
            confirm_suspected: false,
        };
        let again = app
            .import_students(
                &admin,
                IMPORT_SCHOOL,
                XlsxSource::Bytes(bytes),
                opts,
                &no_progress,
            )
            .await
            .unwrap();
        assert_eq!((again.valid, again.written), (0, 0), "{b:?}");
        assert!(message_at(&again, 2, "证件号码").contains("该学生已在本校有学籍"));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn import_refuses_files_that_are_no_template_and_callers_that_are_not_the_school() {
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, &format!("{IMPORT_SCHOOL}-admin")).await;
        let opts = ImportOptions {
            commit: Commit::ValidRows,
            confirm_suspected: false,
        };
        let garbage = XlsxSource::Bytes(Arc::new(b"not a workbook".to_vec()));
        let (code, field, msg) = refusal(
            app.import_students(&admin, IMPORT_SCHOOL, garbage, opts, &no_progress)
                .await,
        );
        assert_eq!(
            (code, field),
            (ErrorCode::ValidationFailed, Some("file")),
            "{b:?}"
        );
        assert!(msg.contains(".xlsx"), "{msg}");
        let mut wb = Workbook::new();
        wb.add_worksheet().write_string(0, 0, "姓名").unwrap();
        let headerless = XlsxSource::Bytes(Arc::new(wb.save_to_buffer().unwrap()));
        let (_, _, msg) = refusal(
            app.import_students(&admin, IMPORT_SCHOOL, headerless, opts, &no_progress)
                .await,
        );
        assert!(msg.contains("缺少列") && msg.contains("证件号码"), "{msg}");
        let template = app.student_template(&admin, IMPORT_SCHOOL).await.unwrap();
        let empty = XlsxSource::Bytes(Arc::new(template));
        let (_, _, msg) = refusal(
            app.import_students(&admin, IMPORT_SCHOOL, empty.clone(), opts, &no_progress)
                .await,
        );
        assert!(msg.contains("没有学生数据"), "{msg}");
        let other = user(&app, "4101050001-admin").await;
        assert_eq!(
            refused(
                app.import_students(&other, IMPORT_SCHOOL, empty.clone(), opts, &no_progress)
                    .await
            ),
            ErrorCode::NotFound
        );
        let reviewer = user(&app, &format!("{IMPORT_SCHOOL}-reviewer")).await;
        assert_eq!(
            refused(
                app.import_students(&reviewer, IMPORT_SCHOOL, empty, opts, &no_progress)
                    .await
            ),
            ErrorCode::Forbidden
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn the_template_has_the_headers_and_lists_and_the_export_masks_and_is_audited() {
    use calamine::{Reader, Xlsx};
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, "4101050001-admin").await;
        let bytes = app.student_template(&admin, "4101050001").await.unwrap();
        let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes.clone())).unwrap();
        assert_eq!(wb.sheet_names(), ["学生信息", "填写说明", "代码表"]);
        let data = wb.worksheet_range("学生信息").unwrap();
        let headers: Vec<String> = (0..8)
            .map(|c| data.get_value((0, c)).unwrap().to_string())
            .collect();
        assert_eq!(headers, xueji_app::import::HEADERS);
        let lists = wb.worksheet_range("代码表").unwrap();
        let col = |c: u32| {
            (1..lists.height() as u32)
                .filter_map(|r| lists.get_value((r, c)).map(|v| v.to_string()))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(col(0).len(), 58, "56 ethnicities + 97 + 98");
        assert!(col(1).contains(&"居民身份证".to_string()));
        assert_eq!(
            col(2),
            ["一年级", "二年级", "三年级", "四年级", "五年级", "六年级"]
        );
        assert!(col(3).contains(&"三年级（2）班".to_string()));
        // Five drop-down lists on the data sheet.
        let sheet_xml = unzip_entry(&bytes, "xl/worksheets/sheet1.xml");
        assert_eq!(sheet_xml.matches("<dataValidation ").count(), 5, "{b:?}");

        let audits = count(
            &app.db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'student.export'",
        )
        .await;
        let filter = StudentFilter {
            school: Some("4101050001".into()),
            ..Default::default()
        };
        let xlsx = app.export_students(&admin, &filter).await.unwrap();
        let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(xlsx)).unwrap();
        let range = wb.worksheet_range("学生名单").unwrap();
        let total = app.students(&admin, &filter, all()).await.unwrap().total;
        assert_eq!(range.height() as i64, total + 1, "{b:?}");
        for r in 1..range.height() as u32 {
            let masked = range.get_value((r, 4)).unwrap().to_string();
            assert_eq!(masked.len(), 18);
            assert_eq!(&masked[6..14], "********", "{masked}");
        }
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'student.export'"
            )
            .await,
            audits + 1
        );
        dispose(&app.db).await;
    }
}

/// One file of a zip archive as text (the .xlsx container), via calamine's zip dependency-free
/// route: search the raw bytes is not enough for deflated entries, so read it with `zip`.
fn unzip_entry(bytes: &[u8], name: &str) -> String {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut s = String::new();
    z.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

// ---------------------------------------------------------------------------------------------
// 公安比对

#[tokio::test]
async fn identity_checks_issue_formal_numbers_and_turn_failures_into_problem_records() {
    let sim = SimulatedIdentityService::shared();
    let failing = |want: IdentityResult| {
        sim.failures()
            .filter(|(n, r)| *r == want && n.starts_with("4101052018"))
            .map(|(n, _)| IdNumber::parse(n).unwrap())
            .next()
            .expect("a listed number")
    };
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, "4101050001-admin").await;
        let class = class_of(&app, &admin, "4101050001", "13").await;
        let passing = IdNumber::from_parts("410104", d(2018, 3, 1), 351);
        let not_found = failing(IdentityResult::NotFound);
        let mismatch = failing(IdentityResult::NameMismatch);
        let mut numbers = vec![];
        for (name, id) in [
            ("周明远", &passing),
            ("吴不存", &not_found),
            ("郑错名", &mismatch),
        ] {
            let r = app
                .register_student(&admin, &new_student(name, id, class))
                .await
                .expect("register");
            numbers.push(r.student.summary.student_no);
        }
        // Who may run it: the national administrator or a provincial authority.
        for who in ["4101050001-admin", "edu410105", "edu410100"] {
            let u = user(&app, who).await;
            assert_eq!(
                refused(app.run_identity_checks_as(&u, sim, 100).await),
                ErrorCode::Forbidden,
                "{who}"
            );
        }
        let guangdong = user(&app, "edu440000").await;
        let status = app.identity_status(&guangdong, sim).await.unwrap();
        assert!(status.simulated);
        assert_eq!(status.pending, 0, "another province's queue is empty");
        let henan = user(&app, "edu410000").await;
        assert_eq!(app.identity_status(&henan, sim).await.unwrap().pending, 3);

        let report = app
            .run_identity_checks_as(&henan, sim, 100)
            .await
            .expect("run");
        assert!(report.simulated && report.adapter == "simulated", "{b:?}");
        assert_eq!(
            (
                report.checked,
                report.passed,
                report.not_found,
                report.name_mismatch,
                report.pending
            ),
            (3, 1, 1, 1, 0)
        );

        // The passing one: G + identity number, the L number kept in the history.
        let formal = format!("G{}", passing.as_str());
        let detail = app
            .student(&admin, &numbers[0])
            .await
            .expect("found by its old number");
        assert_eq!(detail.summary.student_no, formal);
        let kinds: Vec<(String, String, bool)> = detail
            .numbers
            .iter()
            .map(|n| {
                (
                    n.student_no.clone(),
                    n.kind.clone(),
                    n.replaced_at.is_some(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (numbers[0].clone(), "temporary".into(), true),
                (formal.clone(), "formal".into(), false)
            ],
            "{b:?}"
        );
        // The failing ones keep their L numbers and become problem records.
        for (no, kind) in [
            (&numbers[1], "id_not_found"),
            (&numbers[2], "name_mismatch"),
        ] {
            let detail = app.student(&admin, no).await.unwrap();
            assert_eq!(&detail.summary.student_no, no);
            assert_eq!(detail.numbers.len(), 1);
            assert_eq!(
                count(&app.db, &format!(
                    "SELECT COUNT(*) FROM problem_records pr JOIN students s ON s.id = pr.student_id \
                     WHERE s.student_no = '{no}' AND pr.kind = '{kind}' AND pr.status = 'open' AND s.identity_status = 'failed'"
                )).await,
                1,
                "{kind} ({b:?})"
            );
        }
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM identity_checks WHERE simulated = TRUE AND adapter = 'simulated'").await, 3);
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'student.identity_check'"
            )
            .await,
            3
        );
        assert_eq!(
            count(&app.db, &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'student.identity_check' AND entity_id = '{formal}' AND after_json LIKE '%\"simulated\":true%'")).await,
            1
        );
        // A second run finds nothing to do; the nationwide job likewise.
        assert_eq!(
            app.run_identity_checks_as(&henan, sim, 100)
                .await
                .unwrap()
                .checked,
            0
        );
        assert_eq!(app.run_identity_checks(sim, 100).await.unwrap().checked, 0);
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

/// Writes a valid import file for the school 4101050002 (三年级, school year 2026–2027) for the
/// CLI measurement of docs/performance.md:
/// `XUEJI_IMPORT_FILE=/tmp/students-100k.xlsx XUEJI_IMPORT_ROWS=100000 cargo test -p xueji-app --test app -- --ignored write_an_import_file`
#[test]
#[ignore = "writes a measurement file; run by hand"]
fn write_an_import_file() {
    let path = std::env::var("XUEJI_IMPORT_FILE").expect("XUEJI_IMPORT_FILE");
    let rows: u32 = std::env::var("XUEJI_IMPORT_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    assert!(rows <= 365 * 500, "the generator's numbers run out");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet_with_constant_memory().unwrap();
    ws.set_name("学生信息").unwrap();
    for (c, h) in xueji_app::import::HEADERS.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for i in 0..rows {
        let (name, id) = person_of(i);
        let class = if i % 2 == 0 {
            "三年级（1）班"
        } else {
            "三年级（2）班"
        };
        let gender = if id.gender() == xueji_domain::ids::Gender::Male {
            "男"
        } else {
            "女"
        };
        let birth = id.birth_date().to_string();
        for (c, v) in [
            name.as_str(),
            gender,
            &birth,
            "汉族",
            "居民身份证",
            id.as_str(),
            "三年级",
            class,
        ]
        .iter()
        .enumerate()
        {
            ws.write_string(i + 1, c as u16, *v).unwrap();
        }
    }
    wb.save(&path).unwrap();
}

/// Someone registers one of the file's people between validation and writing: the unique key
/// refuses the batch, the import looks again, writes the others and reports that row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registered_between_the_passes_is_reported_not_duplicated() {
    for b in backends() {
        let app = demo_app(b).await;
        let admin = user(&app, &format!("{IMPORT_SCHOOL}-admin")).await;
        let other = user(&app, "4401060001-admin").await;
        let other_class = class_of(&app, &other, "4401060001", "13").await;
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        for (c, h) in xueji_app::import::HEADERS.iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        for i in 0..3u32 {
            let (name, id) = person_of(i);
            let birth = id.birth_date().to_string();
            let class = if i % 2 == 0 {
                "三年级（1）班"
            } else {
                "三年级（2）班"
            };
            for (c, v) in [
                name.as_str(),
                "男",
                &birth,
                "汉族",
                "居民身份证",
                id.as_str(),
                "三年级",
                class,
            ]
            .iter()
            .enumerate()
            {
                ws.write_string(i + 1, c as u16, *v).unwrap();
            }
        }
        let bytes = Arc::new(wb.save_to_buffer().unwrap());
        let (name, id) = person_of(1);
        let handle = tokio::runtime::Handle::current();
        let progress = |p: xueji_app::import::ImportProgress| {
            if p.phase == xueji_app::import::ImportPhase::Validating {
                tokio::task::block_in_place(|| {
                    handle
                        .block_on(
                            app.register_student(&other, &new_student(&name, &id, other_class)),
                        )
                        .expect("registered elsewhere meanwhile");
                });
            }
        };
        let opts = ImportOptions {
            commit: Commit::ValidRows,
            confirm_suspected: false,
        };
        let r = app
            .import_students(
                &admin,
                IMPORT_SCHOOL,
                XlsxSource::Bytes(bytes),
                opts,
                &progress,
            )
            .await
            .unwrap();
        assert_eq!(
            (r.rows, r.valid, r.invalid, r.written),
            (3, 2, 1, 2),
            "{b:?}"
        );
        assert_eq!(r.errors.len(), 1);
        assert_eq!(
            (r.errors[0].row, r.errors[0].column.as_str()),
            (3, "证件号码")
        );
        assert!(
            r.errors[0].message.contains("导入过程中"),
            "{}",
            r.errors[0].message
        );
        assert_eq!(
            count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) FROM students WHERE id_number = '{}'",
                    id.as_str()
                )
            )
            .await,
            1
        );
        dispose(&app.db).await;
    }
}
