//! Races (issue 7.2), on every backend with real parallelism: duplicate decisions on one step,
//! duplicate applications for one student, and the last approval against a withdrawal and then
//! two pulls against each other. Exactly one wins each time; the rest get `conflict` or
//! `transfer_in_progress`; the invariants hold after.

use xueji_app::App;
use xueji_app::auth::CurrentUser;
use xueji_app::students::{StudentFilter, StudentSummary};
use xueji_app::testing::{backends, demo_app};
use xueji_app::transfers::{NewTransfer, TransferDetail};
use xueji_app::{AppError, AppResult};
use xueji_domain::ErrorCode;

use crate::{all, count, dispose, exec, user};

/// Receiving schools in 广东.
const TO: [&str; 4] = ["4401060001", "4401060002", "4403040001", "4403040002"];

/// `n` enrolled 河南 students without an open business.
async fn students(app: &App, n: usize) -> Vec<StudentSummary> {
    let moe = user(app, "moe").await;
    let f = StudentFilter {
        region: Some("410000".into()),
        ..Default::default()
    };
    let list = app.students(&moe, &f, all()).await.unwrap().items;
    let v: Vec<_> = list
        .into_iter()
        .filter(|s| s.open_business.is_none() && s.status == "enrolled")
        .take(n)
        .collect();
    assert_eq!(v.len(), n, "enough demo students");
    v
}

async fn class_of(app: &App, school: &str, grade: &str) -> i64 {
    let u = user(app, &format!("{school}-admin")).await;
    app.classes(&u, school)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.grade == grade)
        .unwrap_or_else(|| panic!("{school} has grade {grade}"))
        .id
}

async fn application(app: &App, s: &StudentSummary, to: &str) -> NewTransfer {
    let grade = s.grade.clone().unwrap();
    NewTransfer {
        from_province: "410000".into(),
        student_name: s.name.clone(),
        student_ref: s.student_no.clone(),
        to_class_id: class_of(app, to, &grade).await,
        to_grade: grade,
        reason: "随迁".into(),
    }
}

/// The account that acts on the waiting step.
async fn waiting_user(app: &App, t: &TransferDetail) -> CurrentUser {
    let step = t
        .steps
        .iter()
        .find(|s| s.state == "waiting")
        .expect("a waiting step");
    let name = if step.party_type == "school" {
        format!("{}-reviewer", step.party)
    } else {
        format!("edu{}", step.party)
    };
    user(app, &name).await
}

/// How many calls won; panics on a loser refused with another code than `losing`.
fn one_winner<T>(results: Vec<AppResult<T>>, losing: &[ErrorCode], what: &str) -> usize {
    let mut wins = 0;
    for r in results {
        match r {
            Ok(_) => wins += 1,
            Err(e) => assert!(
                losing.contains(&e.code()),
                "{what}: a loser got {:?}: {e}",
                e.code()
            ),
        }
    }
    assert_eq!(wins, 1, "{what}: exactly one wins");
    wins
}

async fn joined<T: Send + 'static>(
    handles: Vec<tokio::task::JoinHandle<AppResult<T>>>,
) -> Vec<AppResult<T>> {
    let mut out = vec![];
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// Every enrolled student has exactly one active enrollment, at the school the record names, and
/// every open business belongs to a transfer still open.
async fn invariants_hold(app: &App) {
    let bad = count(
        &app.db,
        "SELECT COUNT(*) FROM students s WHERE s.status = 'enrolled' AND ((SELECT COUNT(*) \
         FROM enrollments e WHERE e.student_id = s.id AND e.ended_at IS NULL AND e.school_id = s.school_id) <> 1 \
         OR (SELECT COUNT(*) FROM enrollments e WHERE e.student_id = s.id AND e.ended_at IS NULL) <> 1)",
    )
    .await;
    assert_eq!(bad, 0, "students not at exactly one school");
    let stale_locks = count(
        &app.db,
        "SELECT COUNT(*) FROM open_businesses b JOIN transfers t ON t.id = b.ref_id \
         WHERE b.kind = 'transfer' AND t.status IN ('rejected', 'withdrawn', 'file_pulled', 'paper_sent', 'completed', 'closed')",
    )
    .await;
    assert_eq!(stale_locks, 0, "a lock outlived its transfer");
    let open_without_lock = count(
        &app.db,
        "SELECT COUNT(*) FROM transfers t WHERE t.status IN ('in_school_review', 'in_authority_review', \
         'out_school_review', 'out_authority_review', 'approved') \
         AND NOT EXISTS (SELECT 1 FROM open_businesses b WHERE b.student_id = t.student_id AND b.ref_id = t.id)",
    )
    .await;
    assert_eq!(open_without_lock, 0, "an open transfer without its lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_duplicate_decisions_one_wins_each_time() {
    const TRANSFERS: usize = 40;
    const RACERS: usize = 6;
    for backend in backends() {
        let app = demo_app(backend).await;
        exec(&app.db, "UPDATE classes SET capacity = 100000")
            .await
            .unwrap();
        let mut tried = 0;
        for (i, s) in students(&app, TRANSFERS).await.iter().enumerate() {
            let to = TO[i % TO.len()];
            let admin = user(&app, &format!("{to}-admin")).await;
            let t = app
                .file_transfer(&admin, &application(&app, s, to).await, vec![])
                .await
                .unwrap();
            let rev = waiting_user(&app, &t).await;
            let handles = (0..RACERS)
                .map(|k| {
                    let (app, rev) = (app.clone(), rev.clone());
                    tokio::spawn(async move {
                        // Half approve, half refuse: either way only one decision may land.
                        app.review_transfer(&rev, t.id, k % 2 == 0, "不同意：材料不全")
                            .await
                    })
                })
                .collect();
            tried += RACERS;
            one_winner(joined(handles).await, &[ErrorCode::Conflict], "decision");
            let decided = count(&app.db, &format!("SELECT COUNT(*) FROM transfer_steps WHERE transfer_id = {} AND decision IS NOT NULL", t.id)).await;
            assert_eq!(decided, 1, "one decision recorded");
        }
        assert_eq!(tried, TRANSFERS * RACERS);
        invariants_hold(&app).await;
        dispose(&app.db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_applications_for_one_student_one_wins() {
    const STUDENTS: usize = 30;
    for backend in backends() {
        let app = demo_app(backend).await;
        exec(&app.db, "UPDATE classes SET capacity = 100000")
            .await
            .unwrap();
        for s in students(&app, STUDENTS).await {
            let mut handles = vec![];
            for to in TO {
                let admin = user(&app, &format!("{to}-admin")).await;
                let req = application(&app, &s, to).await;
                let app = app.clone();
                handles.push(tokio::spawn(async move {
                    app.file_transfer(&admin, &req, vec![]).await
                }));
            }
            one_winner(
                joined(handles).await,
                &[ErrorCode::TransferInProgress],
                "application",
            );
            let n = count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) FROM transfers t JOIN student_numbers n ON n.student_id = t.student_id \
                     WHERE n.student_no = '{}'",
                    s.student_no
                ),
            )
            .await;
            assert_eq!(n, 1, "one application kept for {}", s.name);
        }
        invariants_hold(&app).await;
        dispose(&app.db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_approval_against_withdrawal_then_pull_against_pull() {
    const TRANSFERS: usize = 24;
    for backend in backends() {
        let app = demo_app(backend).await;
        exec(&app.db, "UPDATE classes SET capacity = 100000")
            .await
            .unwrap();
        let (mut approved, mut withdrawn) = (0, 0);
        for (i, s) in students(&app, TRANSFERS).await.iter().enumerate() {
            let to = TO[i % TO.len()];
            let admin = user(&app, &format!("{to}-admin")).await;
            let mut t = app
                .file_transfer(&admin, &application(&app, s, to).await, vec![])
                .await
                .unwrap();
            // Up to the last step.
            while t.current_step.as_deref() != Some("out_authority") {
                let u = waiting_user(&app, &t).await;
                t = app.review_transfer(&u, t.id, true, "同意").await.unwrap();
            }
            let last = waiting_user(&app, &t).await;
            let (a, w) = {
                let (app1, app2, admin2) = (app.clone(), app.clone(), admin.clone());
                let id = t.id;
                let a =
                    tokio::spawn(
                        async move { app1.review_transfer(&last, id, true, "同意").await },
                    );
                let w = tokio::spawn(async move {
                    app2.withdraw_transfer(&admin2, id, "家长改变主意").await
                });
                (a.await.unwrap(), w.await.unwrap())
            };
            let a_ok = a.is_ok();
            one_winner(
                vec![a.map(|_| ()), w.map(|_| ())],
                &[ErrorCode::Conflict],
                "approval or withdrawal",
            );
            if !a_ok {
                withdrawn += 1;
                continue;
            }
            approved += 1;
            // Two pulls (a double click) and a late withdrawal: one pull wins.
            let handles: Vec<tokio::task::JoinHandle<Result<(), AppError>>> = (0..3)
                .map(|k| {
                    let (app, admin) = (app.clone(), admin.clone());
                    let id = t.id;
                    tokio::spawn(async move {
                        if k < 2 {
                            app.pull_file(&admin, id).await.map(|_| ())
                        } else {
                            app.withdraw_transfer(&admin, id, "晚了").await.map(|_| ())
                        }
                    })
                })
                .collect();
            one_winner(joined(handles).await, &[ErrorCode::Conflict], "pull");
            let at_new_school = count(
                &app.db,
                &format!(
                    "SELECT COUNT(*) FROM students st JOIN schools sc ON sc.id = st.school_id \
                     JOIN student_numbers n ON n.student_id = st.id WHERE n.student_no = '{}' AND sc.code = '{to}'",
                    s.student_no
                ),
            )
            .await;
            assert_eq!(at_new_school, 1, "{} moved to {to}", s.name);
        }
        assert_eq!(approved + withdrawn, TRANSFERS);
        eprintln!("{backend:?}: {approved} approvals won, {withdrawn} withdrawals won");
        invariants_hold(&app).await;
        dispose(&app.db).await;
    }
}
