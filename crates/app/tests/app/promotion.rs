//! 升级 / 毕业 at the year's switch, on every backend.

use std::sync::Mutex;

use xueji_app::promotion::{PromotionProgress, PromotionRequest};
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_domain::ErrorCode;

use crate::{all, count, dispose, exec, refused, user};

fn year(y: i32) -> PromotionRequest {
    PromotionRequest {
        year: y,
        region: None,
    }
}

/// (grade, status, class name) of every student of a school, by student number.
async fn snapshot(
    db: &xueji_app::Db,
    school: &str,
) -> Vec<(String, String, String, Option<String>)> {
    let sql = format!(
        "SELECT st.student_no, st.grade, st.status, c.name FROM students st JOIN schools s ON s.id = \
         COALESCE(st.school_id, (SELECT e.school_id FROM enrollments e WHERE e.student_id = st.id ORDER BY e.id DESC LIMIT 1)) \
         LEFT JOIN classes c ON c.id = st.class_id WHERE s.code = '{school}' ORDER BY st.student_no"
    );
    xueji_app::on_pool!(db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(p).await)
        .unwrap()
}

#[tokio::test]
async fn promotion_moves_every_grade_up_and_graduates_the_final_grade_once() {
    for b in backends() {
        let app = demo_app(b).await;
        let county = user(&app, "edu410105").await;
        let before_primary = snapshot(&app.db, "4101050001").await;
        let before_nine = snapshot(&app.db, "4101050002").await;
        let before_other = snapshot(&app.db, "4101020001").await;
        let seen = Mutex::new(vec![]);
        let progress = |p: PromotionProgress| seen.lock().unwrap().push(p);
        let report = app
            .promote_as(&county, &year(2026), &progress)
            .await
            .expect("promote");
        assert_eq!(report.schools, 3, "{b:?}");
        assert_eq!(report.schools_done, 3);
        assert_eq!(report.schools_skipped, 0);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2].schools_seen, 3);
        assert_eq!(seen[2].promoted, report.promoted);
        // 小学: every grade up one, class by class; 六年级 graduates.
        let after = snapshot(&app.db, "4101050001").await;
        let mut graduated = 0;
        for ((no, grade, _, class), (no2, grade2, status2, class2)) in
            before_primary.iter().zip(after.iter())
        {
            assert_eq!(no, no2);
            if grade == "16" {
                graduated += 1;
                assert_eq!(status2, "graduated");
                assert_eq!(grade2, "16");
                assert_eq!(*class2, None, "a graduate leaves its class");
            } else {
                assert_eq!(status2, "enrolled");
                assert_eq!(
                    grade2.parse::<u8>().unwrap(),
                    grade.parse::<u8>().unwrap() + 1
                );
                let (c, c2) = (class.as_deref().unwrap(), class2.as_deref().unwrap());
                assert_eq!(
                    &c[c.find('（').unwrap()..],
                    &c2[c2.find('（').unwrap()..],
                    "same class number"
                );
            }
        }
        assert!(graduated > 0);
        // 九年一贯制: 六年级 goes on to 初一 in the same school; 初三 graduates.
        let after_nine = snapshot(&app.db, "4101050002").await;
        for ((_, grade, _, _), (_, grade2, status2, class2)) in
            before_nine.iter().zip(after_nine.iter())
        {
            match grade.as_str() {
                "16" => {
                    assert_eq!((grade2.as_str(), status2.as_str()), ("21", "enrolled"));
                    assert!(class2.as_deref().unwrap().starts_with("初一"));
                }
                "23" => assert_eq!(status2, "graduated"),
                _ => assert_eq!(status2, "enrolled"),
            }
        }
        // Another county is untouched.
        assert_eq!(snapshot(&app.db, "4101020001").await, before_other);
        // The new 一年级 classes are empty, ready for the new intake.
        let admin = user(&app, "4101050001-admin").await;
        let classes = app.classes(&admin, "4101050001").await.unwrap();
        assert!(
            classes
                .iter()
                .filter(|c| c.grade == "11")
                .all(|c| c.enrolled == 0)
        );
        // Graduates leave the list of enrolled students; their archive stays readable.
        let listed = app
            .students(&admin, &StudentFilter::default(), all())
            .await
            .unwrap();
        assert!(listed.items.iter().all(|s| s.status == "enrolled"));
        let graduate = &before_primary.iter().find(|s| s.1 == "16").unwrap().0;
        let st = app.student(&admin, graduate).await.unwrap();
        assert_eq!(st.summary.status, "graduated");
        assert_eq!(st.enrollments[0].status, "graduated");
        assert!(st.enrollments[0].ended_at.is_some());
        // The archive keeps each year: the promoted enrollment ended, the next one active.
        let promoted_no = &before_primary.iter().find(|s| s.1 == "13").unwrap().0;
        let st = app.student(&admin, promoted_no).await.unwrap();
        assert_eq!(st.enrollments.len(), 2);
        assert_eq!(
            (
                st.enrollments[0].grade.as_str(),
                st.enrollments[0].status.as_str()
            ),
            ("14", "active")
        );
        assert_eq!(
            (
                st.enrollments[1].grade.as_str(),
                st.enrollments[1].status.as_str()
            ),
            ("13", "promoted")
        );
        // One audit row per school, with its counts; a message to each school.
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM audit_log WHERE action = 'school.promote' AND after_json LIKE '%\"school_year\":2026%'").await,
            3
        );
        let msgs = app.notifications(&admin, false, all()).await.unwrap();
        assert!(msgs.items.iter().any(|m| m.kind == "promotion_done"));
        // Running the same year again changes nothing.
        let snap = snapshot(&app.db, "4101050001").await;
        let enrollments = count(&app.db, "SELECT COUNT(*) FROM enrollments").await;
        let again = app.promote_as(&county, &year(2026), &|_| {}).await.unwrap();
        assert_eq!(
            (
                again.schools_done,
                again.schools_skipped,
                again.promoted,
                again.graduated
            ),
            (0, 3, 0, 0)
        );
        assert_eq!(snapshot(&app.db, "4101050001").await, snap);
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM enrollments").await,
            enrollments
        );
        assert!(matches!(
            xueji_app::audit::verify(&app.db).await.unwrap(),
            xueji_app::audit::ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn an_open_business_refuses_the_run_lists_the_students_and_changes_nothing() {
    for b in backends() {
        let app = demo_app(b).await;
        let county = user(&app, "edu410105").await;
        let admin = user(&app, "4101050002-admin").await;
        let f = StudentFilter {
            grade: Some("22".into()),
            ..Default::default()
        };
        let locked = app.students(&admin, &f, all()).await.unwrap().items[0].clone();
        exec(
            &app.db,
            &format!(
                "INSERT INTO open_businesses (student_id, kind, ref_id, opened_at) \
             SELECT id, 'transfer', 0, created_at FROM students WHERE student_no = '{}'",
                locked.student_no
            ),
        )
        .await
        .unwrap();
        let before = snapshot(&app.db, "4101050002").await;
        let audit_rows = count(&app.db, "SELECT COUNT(*) FROM audit_log").await;
        let e = app.promote_as(&county, &year(2026), &|_| {}).await;
        let err = match e {
            Err(xueji_app::AppError::Domain(e)) => e,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(err.code, ErrorCode::TransferInProgress);
        assert!(err.message.contains(&locked.student_no), "{}", err.message);
        // The clean-up list names the student and the business.
        let blockers = app.promotion_blockers(&county, 2026, None).await.unwrap();
        assert_eq!(blockers.len(), 1);
        assert_eq!(blockers[0].student_no, locked.student_no);
        assert_eq!(blockers[0].business, "transfer");
        assert_eq!(blockers[0].school, "4101050002");
        // Nothing changed anywhere in the county.
        assert_eq!(snapshot(&app.db, "4101050002").await, before);
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM promotion_runs").await,
            0
        );
        assert_eq!(
            count(&app.db, "SELECT COUNT(*) FROM audit_log").await,
            audit_rows
        );
        // Another county is not blocked by it.
        let other = user(&app, "edu410102").await;
        assert!(
            app.promotion_blockers(&other, 2026, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            app.promote_as(&other, &year(2026), &|_| {})
                .await
                .unwrap()
                .schools_done,
            3
        );
        // Once the business ends, the run goes through.
        exec(&app.db, "DELETE FROM open_businesses").await.unwrap();
        assert_eq!(
            app.promote_as(&county, &year(2026), &|_| {})
                .await
                .unwrap()
                .schools_done,
            3
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn only_authorities_promote_and_only_within_their_jurisdiction() {
    for b in backends() {
        let app = demo_app(b).await;
        let school = user(&app, "4101050001-admin").await;
        assert_eq!(
            refused(app.promote_as(&school, &year(2026), &|_| {}).await),
            ErrorCode::Forbidden
        );
        let guangdong = user(&app, "edu440000").await;
        // A region outside the caller's jurisdiction has no schools to promote.
        let outside = PromotionRequest {
            year: 2026,
            region: Some("410105".into()),
        };
        assert_eq!(
            refused(app.promote_as(&guangdong, &outside, &|_| {}).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            refused(app.promote_as(&guangdong, &year(2031), &|_| {}).await),
            ErrorCode::ValidationFailed
        );
        let henan_before = snapshot(&app.db, "4101050001").await;
        let r = app
            .promote_as(&guangdong, &year(2026), &|_| {})
            .await
            .unwrap();
        assert_eq!(r.schools, 6, "two counties of 广东 with three schools each");
        assert_eq!(snapshot(&app.db, "4101050001").await, henan_before);
        // The national administrator, one region at a time.
        let moe = user(&app, "moe").await;
        let one = PromotionRequest {
            year: 2026,
            region: Some("410105".into()),
        };
        let r = app.promote_as(&moe, &one, &|_| {}).await.unwrap();
        assert_eq!((r.schools, r.schools_done), (3, 3));
        dispose(&app.db).await;
    }
}
