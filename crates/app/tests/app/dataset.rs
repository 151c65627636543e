//! The demo dataset of API.md: its shape, its validity, idempotent seeding, 一人一籍.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, TimeZone, Utc};
use xueji_app::seed::{DemoSummary, regions_data};
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app, empty_db, test_clock};
use xueji_app::{App, AppError};
use xueji_domain::ids::{Grade, IdNumber};

use crate::{all, count, dispose, exec, user};

/// 7 counties × 3 schools; 48 + 72 + 24 students each; 1 + 3220 + 2 × 21 accounts.
const DEMO: DemoSummary = DemoSummary {
    regions: 3220,
    schools: 21,
    students: 1008,
    // moe, the separated administrators (sysadmin, secadmin, auditor), an authority account per
    // region, a leader account (edu<code>-leader) for each of the 338 regions of 河南, 广东 and
    // 北京, and two accounts per school.
    users: 1 + 3 + 3220 + 338 + 42,
};

#[tokio::test]
async fn demo_dataset_has_every_region_and_authority() {
    let data = regions_data();
    let mut by_level: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &data {
        *by_level.entry(r.level).or_default() += 1;
    }
    assert_eq!(by_level.get("province"), Some(&32));
    for b in backends() {
        let app = demo_app(b).await;
        let provinces = app.regions(None).await.expect("provinces");
        assert_eq!(provinces.len(), 32, "{b:?}: 31 provinces and 兵团");
        assert!(provinces.iter().all(|r| r.level == "province"), "{b:?}");
        let codes: BTreeSet<&str> = provinces.iter().map(|r| r.code.as_str()).collect();
        for c in ["110000", "410000", "440000", "650000", "660000"] {
            assert!(codes.contains(c), "{b:?}: province {c} missing");
        }
        assert!(
            provinces
                .iter()
                .any(|r| r.code == "660000" && r.name == "新疆生产建设兵团"),
            "{b:?}"
        );

        // Every city and county of the shipped GB/T 2260 table is loaded.
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM regions").await,
            data.len() as i64
        );
        for (level, n) in &by_level {
            let sql = format!("SELECT COUNT(*) FROM regions WHERE level = '{level}'");
            assert_eq!(count(&app.db, &sql).await, *n, "{b:?}: {level}");
        }
        let zhengzhou = app.regions(Some("410100")).await.expect("children");
        assert!(
            zhengzhou
                .iter()
                .any(|r| r.code == "410105" && r.name == "金水区" && r.level == "county"),
            "{b:?}: 金水区 under 郑州市: {zhengzhou:?}"
        );
        assert!(zhengzhou.iter().any(|r| r.code == "410102"), "{b:?}");
        let henan = app.regions(Some("410000")).await.expect("children");
        assert!(
            henan
                .iter()
                .any(|r| r.code == "410100" && r.level == "city"),
            "{b:?}"
        );
        assert!(henan.iter().any(|r| r.code == "410300"), "{b:?}: 洛阳市");

        // An authority and its account for every region.
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM authorities").await,
            data.len() as i64
        );
        let without_account = count(
            &app.db,
            "SELECT COUNT(*) FROM regions r WHERE NOT EXISTS (SELECT 1 FROM users u \
             WHERE u.username = 'edu' || r.code AND u.role = 'authority_admin' AND u.authority_region = r.code)",
        )
        .await;
        assert_eq!(
            without_account, 0,
            "{b:?}: regions without an edu<code> account"
        );
        let without_school_accounts = count(
            &app.db,
            "SELECT COUNT(*) FROM schools s WHERE NOT EXISTS (SELECT 1 FROM users u \
             WHERE u.username = s.code || '-admin' AND u.role = 'school_admin' AND u.school_id = s.id) \
             OR NOT EXISTS (SELECT 1 FROM users u WHERE u.username = s.code || '-reviewer' \
             AND u.role = 'school_reviewer' AND u.school_id = s.id)",
        )
        .await;
        assert_eq!(without_school_accounts, 0, "{b:?}");
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM users WHERE username = 'moe' AND role = 'national_admin'"
            )
            .await,
            1
        );
        // The accounts work with the documented password.
        for name in [
            "moe",
            "edu660000",
            "edu410105",
            "edu110108",
            "4403040003-reviewer",
        ] {
            user(&app, name).await;
        }
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn demo_schools_cover_three_provinces() {
    for b in backends() {
        let app = demo_app(b).await;
        let moe = user(&app, "moe").await;
        for province in ["410000", "440000", "110000"] {
            let schools = app
                .schools(&moe, Some(province), all())
                .await
                .expect("schools");
            assert_eq!(schools.total as usize, schools.items.len());
            let mut per_county: BTreeMap<&str, usize> = BTreeMap::new();
            let mut stages = BTreeSet::new();
            for s in &schools.items {
                assert!(
                    s.region.starts_with(&province[0..2]),
                    "{b:?}: {} in {province}",
                    s.code
                );
                assert_eq!(s.code.len(), 10, "{b:?}: 学校标识码 {}", s.code);
                *per_county.entry(s.region.as_str()).or_default() += 1;
                let filter = StudentFilter {
                    school: Some(s.code.clone()),
                    ..Default::default()
                };
                let students = app.students(&moe, &filter, all()).await.expect("students");
                assert!(
                    students.total >= 20,
                    "{b:?}: {} has {} students",
                    s.code,
                    students.total
                );
                assert!(students.items.iter().all(|st| st.status == "enrolled"));
                let classes = app.classes(&moe, &s.code).await.expect("classes");
                for g in &s.grades {
                    let n = classes.iter().filter(|c| &c.grade == g).count();
                    assert!(n >= 1, "{b:?}: {} has no class in grade {g}", s.code);
                    stages.insert(&g[0..1] == "1");
                }
                let enrolled: i64 = classes.iter().map(|c| c.enrolled).sum();
                assert_eq!(
                    enrolled, students.total,
                    "{b:?}: {} enrolled per class",
                    s.code
                );
            }
            let counties_with_two = per_county.values().filter(|n| **n >= 2).count();
            assert!(
                counties_with_two >= 2,
                "{b:?}: {province} counties {per_county:?}"
            );
            assert_eq!(
                stages.len(),
                2,
                "{b:?}: {province} needs 小学 and 初中 grades"
            );
        }
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn demo_students_have_valid_numbers_and_plausible_birth_dates() {
    type Row = (
        String,
        String,
        String,
        NaiveDate,
        Option<String>,
        String,
        Option<i64>,
        String,
    );
    for b in backends() {
        let app = demo_app(b).await;
        let rows: Vec<Row> = xueji_app::on_pool!(app.db.read(), p => sqlx::query_as(
            "SELECT student_no, id_type, id_number, birth_date, grade, gender, school_id, status FROM students"
        ).fetch_all(p).await)
        .expect("students");
        assert_eq!(rows.len(), 1008, "{b:?}");
        let mut ids = BTreeSet::new();
        for (no, id_type, id_number, birth, grade, gender, school_id, status) in rows {
            let id = IdNumber::parse(&id_number)
                .unwrap_or_else(|e| panic!("{b:?}: identity number {id_number}: {e}"));
            assert_eq!(id.as_str(), id_number, "{b:?}: stored normalised");
            assert_eq!(id_type, "1", "{b:?}: 居民身份证");
            assert_eq!(
                no,
                format!("G{id_number}"),
                "{b:?}: formal 学籍号 is G + id"
            );
            assert_eq!(id.birth_date(), birth, "{b:?}: {no} birth date");
            assert_eq!(id.gender().code(), gender, "{b:?}: {no} gender");
            let grade = Grade::parse(grade.as_deref().expect("enrolled students have a grade"))
                .expect("grade code");
            assert!(
                grade.fits_birth_date(birth, 2026),
                "{b:?}: {no} born {birth} in grade {grade:?}"
            );
            assert!(school_id.is_some() && status == "enrolled", "{b:?}: {no}");
            assert!(ids.insert(id_number), "{b:?}: identity numbers are unique");
        }
        // Every student holds exactly the one formal number and one active enrollment.
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM student_numbers WHERE kind = 'formal'"
            )
            .await,
            1008
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM enrollments WHERE status = 'active' AND ended_at IS NULL"
            )
            .await,
            1008
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn seeding_twice_changes_nothing() {
    for b in backends() {
        let db = empty_db(b).await;
        let app = App::new(db, test_clock()).await.expect("app");
        let first = app.seed_demo().await.expect("first seed");
        assert_eq!(first, DEMO, "{b:?}");
        let audit_rows = count(&app.db, "SELECT COUNT(*) FROM audit_log").await;
        let holidays = count(&app.db, "SELECT COUNT(*) FROM holidays").await;
        assert!(
            holidays > 300,
            "{b:?}: holiday calendar loaded ({holidays})"
        );
        let second = app.seed_demo().await.expect("second seed");
        assert_eq!(first, second, "{b:?}");
        assert_eq!(app.demo_summary().await.expect("summary"), DEMO, "{b:?}");
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM audit_log").await,
            audit_rows,
            "{b:?}"
        );
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM holidays").await,
            holidays,
            "{b:?}"
        );
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM classes").await,
            7 * (12 + 18 + 6),
            "{b:?}"
        );
        dispose(&app.db).await;
    }
}

/// The same dataset on every machine: a test copy equals a fresh seed.
#[tokio::test]
async fn demo_copy_matches_a_fresh_seed() {
    for b in backends() {
        let app = demo_app(b).await;
        assert_eq!(app.demo_summary().await.expect("summary"), DEMO, "{b:?}");
        assert_eq!(app.seed_demo().await.expect("reseed"), DEMO, "{b:?}");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn one_person_one_record() {
    for b in backends() {
        let app = demo_app(b).await;
        let (id_number,): (String,) = xueji_app::on_pool!(app.db.read(), p => sqlx::query_as(
            "SELECT id_number FROM students ORDER BY id LIMIT 1"
        ).fetch_one(p).await)
        .expect("a student");
        let at = Utc.with_ymd_and_hms(2026, 11, 2, 1, 0, 0).unwrap();
        let insert = |no: String, id: String| {
            let db = app.db.clone();
            async move {
                xueji_app::on_pool!(db.write(), p => sqlx::query(
                    "INSERT INTO students (student_no, id_type, id_number, name, gender, birth_date, ethnicity, \
                     status, version, created_at, updated_at) \
                     VALUES ($1, '1', $2, '重复', '1', $3, '01', 'enrolled', 0, $4, $4)"
                ).bind(no).bind(id).bind(NaiveDate::from_ymd_opt(2015, 3, 1).unwrap()).bind(at)
                .execute(p).await.map(|r| r.rows_affected()))
            }
        };
        let before = count(&app.db, "SELECT COUNT(*) FROM students").await;
        // A second record of the same person, under another student number: refused by the key.
        let err = insert("L410105201503010001".into(), id_number.clone())
            .await
            .expect_err("a second record of the same identity document");
        assert!(
            AppError::from(err).is_unique_violation(),
            "{b:?}: refused by the unique key"
        );
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM students").await,
            before,
            "{b:?}"
        );
        // The same insert with another person's number passes, so the refusal above was the key.
        let other =
            IdNumber::from_parts("410105", NaiveDate::from_ymd_opt(2015, 3, 1).unwrap(), 991);
        let n = insert(format!("G{}", other.as_str()), other.as_str().into())
            .await
            .expect("a new person");
        assert_eq!(n, 1);
        // And a student number is never given twice.
        let err = insert(
            format!("G{id_number}"),
            IdNumber::from_parts("410105", NaiveDate::from_ymd_opt(2015, 3, 1).unwrap(), 993)
                .as_str()
                .into(),
        )
        .await
        .expect_err("a duplicate student number");
        assert!(AppError::from(err).is_unique_violation(), "{b:?}");
        // Nor can an update make two records of one person.
        let dup = exec(
            &app.db,
            &format!(
                "UPDATE students SET id_number = '{id_number}' WHERE student_no = 'G{}'",
                other.as_str()
            ),
        )
        .await
        .expect_err("an update into a duplicate");
        assert!(AppError::from(dup).is_unique_violation(), "{b:?}");
        dispose(&app.db).await;
    }
}
