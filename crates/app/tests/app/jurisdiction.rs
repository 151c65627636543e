//! Each caller sees its own jurisdiction only: a school itself, an authority its region subtree,
//! the national administrator everything. Out of view is `not_found` (never revealing existence).

use std::collections::BTreeSet;

use xueji_app::App;
use xueji_app::auth::CurrentUser;
use xueji_app::students::StudentFilter;
use xueji_app::testing::{backends, demo_app};
use xueji_domain::ErrorCode;

use crate::{all, dispose, refused, user};

fn of_school(code: &str) -> StudentFilter {
    StudentFilter {
        school: Some(code.into()),
        ..Default::default()
    }
}

/// A student number of a school, as the national administrator sees it.
async fn some_student(app: &App, school: &str) -> String {
    let moe = user(app, "moe").await;
    let list = app
        .students(&moe, &of_school(school), all())
        .await
        .expect("students");
    list.items[0].student_no.clone()
}

async fn school_codes(app: &App, who: &CurrentUser, region: Option<&str>) -> BTreeSet<String> {
    let page = app.schools(who, region, all()).await.expect("schools");
    assert_eq!(page.total as usize, page.items.len());
    page.items.into_iter().map(|s| s.code).collect()
}

#[tokio::test]
async fn county_authority_sees_its_county_only() {
    for b in backends() {
        let app = demo_app(b).await;
        let jinshui = user(&app, "edu410105").await;
        let other_no = some_student(&app, "4101020001").await;
        let own_no = some_student(&app, "4101050001").await;

        assert_eq!(
            refused(
                app.students(&jinshui, &of_school("4101020001"), all())
                    .await
            ),
            ErrorCode::NotFound,
            "{b:?}"
        );
        assert_eq!(
            refused(app.student(&jinshui, &other_no).await),
            ErrorCode::NotFound,
            "{b:?}"
        );
        assert_eq!(
            refused(app.school(&jinshui, "4101020001").await),
            ErrorCode::NotFound,
            "{b:?}"
        );
        assert_eq!(
            refused(app.classes(&jinshui, "4101020001").await),
            ErrorCode::NotFound,
            "{b:?}"
        );
        // A school that does not exist answers the same as one out of view.
        assert_eq!(
            refused(app.school(&jinshui, "4101059999").await),
            ErrorCode::NotFound,
            "{b:?}"
        );

        let own: BTreeSet<String> = ["4101050001", "4101050002", "4101050003"]
            .map(String::from)
            .into();
        assert_eq!(school_codes(&app, &jinshui, None).await, own, "{b:?}");
        assert!(
            school_codes(&app, &jinshui, Some("410102"))
                .await
                .is_empty(),
            "{b:?}"
        );
        assert!(
            school_codes(&app, &jinshui, Some("440000"))
                .await
                .is_empty(),
            "{b:?}"
        );
        assert_eq!(
            school_codes(&app, &jinshui, Some("410000")).await,
            own,
            "{b:?}: filter ∩ scope"
        );

        // Without a school filter the list holds the county's students only.
        let mine = app
            .students(&jinshui, &StudentFilter::default(), all())
            .await
            .expect("students");
        assert_eq!(mine.total, 48 + 72 + 24, "{b:?}");
        let region_filter = StudentFilter {
            region: Some("410102".into()),
            ..Default::default()
        };
        assert_eq!(
            app.students(&jinshui, &region_filter, all())
                .await
                .expect("empty")
                .total,
            0,
            "{b:?}"
        );

        let detail = app
            .student(&jinshui, &own_no)
            .await
            .expect("own county's student");
        assert_eq!(detail.school.as_deref(), Some("4101050001"));
        assert_eq!(
            detail.id_number, None,
            "{b:?}: an authority sees the masked number only"
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn school_user_sees_itself_only() {
    for b in backends() {
        let app = demo_app(b).await;
        let own_no = some_student(&app, "4101050001").await;
        let neighbour_no = some_student(&app, "4101050002").await;
        for name in ["4101050001-admin", "4101050001-reviewer"] {
            let school = user(&app, name).await;
            assert_eq!(
                school_codes(&app, &school, None).await,
                BTreeSet::from(["4101050001".to_string()]),
                "{b:?}: {name}"
            );
            let mine = app
                .students(&school, &StudentFilter::default(), all())
                .await
                .expect("own");
            assert_eq!(mine.total, 48, "{b:?}: {name}");
            let explicit = app
                .students(&school, &of_school("4101050001"), all())
                .await
                .expect("own");
            assert_eq!(explicit.total, 48, "{b:?}: {name}");
            assert_eq!(
                refused(app.students(&school, &of_school("4101050002"), all()).await),
                ErrorCode::NotFound,
                "{b:?}: {name}"
            );
            assert_eq!(
                refused(app.student(&school, &neighbour_no).await),
                ErrorCode::NotFound,
                "{b:?}"
            );
            assert_eq!(
                refused(app.classes(&school, "4101050002").await),
                ErrorCode::NotFound,
                "{b:?}"
            );
            let detail = app.student(&school, &own_no).await.expect("own student");
            assert_eq!(
                detail.id_number.as_deref().map(|id| format!("G{id}")),
                Some(own_no.clone()),
                "{b:?}: the school holding the student sees the whole number"
            );
            // A region filter never widens a school's view.
            let wide = StudentFilter {
                region: Some("410000".into()),
                ..Default::default()
            };
            assert_eq!(
                app.students(&school, &wide, all())
                    .await
                    .expect("own")
                    .total,
                48,
                "{b:?}"
            );
        }
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn city_and_province_authorities_see_their_subtree() {
    for b in backends() {
        let app = demo_app(b).await;
        let zhengzhou = user(&app, "edu410100").await;
        let codes = school_codes(&app, &zhengzhou, None).await;
        assert_eq!(codes.len(), 6, "{b:?}: {codes:?}");
        assert!(
            codes
                .iter()
                .all(|c| c.starts_with("410105") || c.starts_with("410102")),
            "{b:?}"
        );
        assert!(
            codes.contains("4101050001") && codes.contains("4101020001"),
            "{b:?}"
        );
        let zhongyuan = app
            .students(&zhengzhou, &of_school("4101020001"), all())
            .await
            .expect("in view");
        assert_eq!(zhongyuan.total, 48, "{b:?}");
        let no = some_student(&app, "4101020001").await;
        app.student(&zhengzhou, &no)
            .await
            .expect("a student of the city");
        let luoyang_no = some_student(&app, "4103020001").await;
        assert_eq!(
            refused(app.student(&zhengzhou, &luoyang_no).await),
            ErrorCode::NotFound,
            "{b:?}"
        );

        let henan = user(&app, "edu410000").await;
        assert_eq!(school_codes(&app, &henan, None).await.len(), 9, "{b:?}");
        app.student(&henan, &luoyang_no)
            .await
            .expect("a student of the province");
        let guangdong_no = some_student(&app, "4401060001").await;
        assert_eq!(
            refused(app.student(&henan, &guangdong_no).await),
            ErrorCode::NotFound,
            "{b:?}"
        );

        // An authority of a region without schools sees none.
        let hainan = user(&app, "edu460000").await;
        assert!(school_codes(&app, &hainan, None).await.is_empty(), "{b:?}");
        assert_eq!(
            refused(app.student(&hainan, &no).await),
            ErrorCode::NotFound,
            "{b:?}"
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn national_administrator_sees_everything() {
    for b in backends() {
        let app = demo_app(b).await;
        let moe = user(&app, "moe").await;
        assert_eq!(school_codes(&app, &moe, None).await.len(), 21, "{b:?}");
        let everyone = app
            .students(&moe, &StudentFilter::default(), all())
            .await
            .expect("all");
        assert_eq!(everyone.total, 1008, "{b:?}");
        assert_eq!(everyone.items.len(), 500, "{b:?}: one page of at most 500");
        let no = some_student(&app, "1101050003").await;
        let detail = app.student(&moe, &no).await.expect("any student");
        assert_eq!(
            detail.id_number, None,
            "{b:?}: the whole number is for the holding school only"
        );
        assert_eq!(
            refused(app.student(&moe, "G110105201001019999").await),
            ErrorCode::NotFound,
            "{b:?}"
        );
        dispose(&app.db).await;
    }
}
