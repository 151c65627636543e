//! Account security (issue 7 item 5): password policy and history, forced change of initial and
//! expired passwords, session timeouts and logout everywhere, sealing and unsealing, address
//! throttling without user enumeration, the TOTP second factor, 三员分立, and audit pruning that
//! keeps the chain verifiable.

use chrono::Duration;
use xueji_app::accounts::{AccountPolicy, NewAccount, TotpRequired, totp_code};
use xueji_app::audit::{self, ChainCheck};
use xueji_app::audit_trail::AuditFilter;
use xueji_app::auth::{LoginOk, SessionKind};
use xueji_app::seed::DEMO_PASSWORD;
use xueji_app::testing::{backends, demo_app, test_clock};
use xueji_app::{App, AppResult};
use xueji_domain::ErrorCode;

use crate::{all, count, dispose, exec, refused, user};

const IP: &str = "198.51.100.20";

async fn login(app: &App, name: &str, password: &str) -> AppResult<LoginOk> {
    app.login(name, password, IP, SessionKind::Api).await
}

fn new_account(username: &str, password: &str) -> NewAccount {
    NewAccount {
        username: username.into(),
        display_name: "新用户".into(),
        role: "school_admin".into(),
        org_code: Some("4101050001".into()),
        initial_password: password.into(),
    }
}

#[tokio::test]
async fn password_changes_follow_the_policy_and_history() {
    for b in backends() {
        let app = demo_app(b).await;
        let u = user(&app, "4101050001-admin").await;
        let weak = |r: AppResult<()>| match r {
            Err(e) => (e.code(), e.to_domain().field),
            Ok(()) => panic!("accepted"),
        };
        assert_eq!(
            weak(
                app.change_password(&u, "wrong", "Good#Pass2026", None)
                    .await
            ),
            (ErrorCode::ValidationFailed, Some("old")),
            "{b:?}: the old password must be right"
        );
        for bad in ["Sh0rt!", "alllowercase12", "x4101050001-ADMIN!"] {
            assert_eq!(
                weak(app.change_password(&u, DEMO_PASSWORD, bad, None).await),
                (ErrorCode::WeakPassword, Some("new")),
                "{b:?}: {bad}"
            );
        }
        // Six changes (the demo password predates the policy, so start from one that meets
        // it): then each of the last five passwords, the current one included, is refused.
        let pw = |i: usize| format!("Strong#Pass{i:02}");
        let mut current = DEMO_PASSWORD.to_string();
        for i in 0..=5 {
            app.change_password(&u, &current, &pw(i), None)
                .await
                .unwrap_or_else(|e| panic!("{b:?}: change {i}: {e}"));
            current = pw(i);
        }
        for i in 1..=5 {
            assert_eq!(
                weak(app.change_password(&u, &current, &pw(i), None).await).0,
                ErrorCode::WeakPassword,
                "{b:?}: password {i} is among the last five"
            );
        }
        // Password 0 is six back: allowed again.
        app.change_password(&u, &current, &pw(0), None)
            .await
            .expect("older than the last five");
        assert_eq!(
            refused(login(&app, "4101050001-admin", &pw(5)).await),
            ErrorCode::Unauthenticated
        );
        login(&app, "4101050001-admin", &pw(0))
            .await
            .expect("the new password works");
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'password_change'"
            )
            .await,
            7
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_only() {
    for b in backends() {
        let app = demo_app(b).await;
        let a = login(&app, "edu410105", DEMO_PASSWORD).await.expect("a");
        let other = login(&app, "edu410105", DEMO_PASSWORD).await.expect("b");
        app.change_password(&a.user, DEMO_PASSWORD, "Another#Pass1", Some(&a.token))
            .await
            .expect("change");
        let live = |t: String| {
            let app = app.clone();
            async move {
                app.authenticate(&t, SessionKind::Api)
                    .await
                    .expect("auth")
                    .is_some()
            }
        };
        assert!(
            live(a.token.clone()).await,
            "{b:?}: the changing session stays"
        );
        assert!(
            !live(other.token.clone()).await,
            "{b:?}: the other one ends"
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn accounts_made_by_the_system_administrator_must_change_the_initial_password() {
    for b in backends() {
        let app = demo_app(b).await;
        let sys = user(&app, "sysadmin").await;
        assert!(
            !sys.must_change_password,
            "{b:?}: demo accounts are never forced"
        );
        assert!(!user(&app, "moe").await.must_change_password);
        // Only the system administrator creates accounts, and the initial password follows the
        // policy too.
        let moe = user(&app, "moe").await;
        assert_eq!(
            refused(
                app.create_account(&moe, new_account("newbie", "Init#Pass2026"))
                    .await
            ),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refused(
                app.create_account(&sys, new_account("newbie", "short"))
                    .await
            ),
            ErrorCode::WeakPassword
        );
        let mut bad_org = new_account("newbie", "Init#Pass2026");
        bad_org.org_code = Some("9999999999".into());
        assert_eq!(
            refused(app.create_account(&sys, bad_org).await),
            ErrorCode::ValidationFailed
        );
        let acc = app
            .create_account(&sys, new_account("newbie", "Init#Pass2026"))
            .await
            .expect("create");
        assert!(acc.must_change_password);
        assert_eq!(
            refused(
                app.create_account(&sys, new_account("newbie", "Init#Pass2026"))
                    .await
            ),
            ErrorCode::Conflict,
            "{b:?}: user names are unique"
        );
        let ok = login(&app, "newbie", "Init#Pass2026").await.expect("login");
        assert!(ok.user.must_change_password, "{b:?}");
        app.change_password(&ok.user, "Init#Pass2026", "Mine#Pass2026", Some(&ok.token))
            .await
            .expect("change");
        let (u, _) = app
            .authenticate(&ok.token, SessionKind::Api)
            .await
            .expect("auth")
            .expect("live");
        assert!(!u.must_change_password, "{b:?}: changed, no longer forced");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn password_rotation_when_configured_forces_a_change() {
    for b in backends() {
        let app = demo_app(b).await;
        let t0 = test_clock().now();
        assert!(!user(&app, "edu410105").await.must_change_password);
        app.set_accounts(AccountPolicy {
            password_max_age: Some(Duration::days(90)),
            ..AccountPolicy::default()
        });
        app.clock.set(t0 + Duration::days(91));
        let ok = login(&app, "edu410105", DEMO_PASSWORD)
            .await
            .expect("login");
        assert!(ok.user.must_change_password, "{b:?}: expired");
        app.change_password(&ok.user, DEMO_PASSWORD, "Rotated#Pass1", None)
            .await
            .expect("change");
        assert!(!user_pw(&app, "edu410105", "Rotated#Pass1").await);
        app.clock.set(t0 + Duration::days(182));
        assert!(user_pw(&app, "edu410105", "Rotated#Pass1").await, "{b:?}");
        dispose(&app.db).await;
    }
}

/// Whether the account must change its password after signing in with `pw`.
async fn user_pw(app: &App, name: &str, pw: &str) -> bool {
    login(app, name, pw)
        .await
        .expect("login")
        .user
        .must_change_password
}

#[tokio::test]
async fn sessions_end_after_idle_and_absolute_timeouts_and_everywhere_at_once() {
    for b in backends() {
        let app = demo_app(b).await;
        let t0 = test_clock().now();
        let live = |t: &str| {
            let (app, t) = (app.clone(), t.to_string());
            async move {
                app.authenticate(&t, SessionKind::Api)
                    .await
                    .expect("auth")
                    .is_some()
            }
        };
        let ok = login(&app, "edu410105", DEMO_PASSWORD)
            .await
            .expect("login");
        // Used every 20 minutes: alive until the 12-hour absolute limit.
        let mut at = t0;
        while at + Duration::minutes(20) < t0 + Duration::hours(12) {
            at += Duration::minutes(20);
            app.clock.set(at);
            assert!(live(&ok.token).await, "{b:?}: active at {at}");
        }
        app.clock.set(t0 + Duration::hours(12));
        assert!(!live(&ok.token).await, "{b:?}: absolute timeout");
        // A shorter idle timeout set by the operator applies.
        app.set_accounts(AccountPolicy {
            session_idle: Duration::minutes(5),
            ..AccountPolicy::default()
        });
        let ok = login(&app, "edu410105", DEMO_PASSWORD)
            .await
            .expect("login");
        app.clock
            .set(t0 + Duration::hours(12) + Duration::minutes(6));
        assert!(!live(&ok.token).await, "{b:?}: idle timeout");
        // Logout everywhere ends every session of the user, and only theirs.
        let a = login(&app, "edu410105", DEMO_PASSWORD).await.expect("a");
        let web = app
            .login("edu410105", DEMO_PASSWORD, IP, SessionKind::Web)
            .await
            .expect("web");
        let other = login(&app, "moe", DEMO_PASSWORD).await.expect("other");
        assert_eq!(app.logout_everywhere(&a.user).await.expect("all"), 2);
        assert!(!live(&a.token).await);
        assert!(
            app.authenticate(&web.token, SessionKind::Web)
                .await
                .expect("auth")
                .is_none()
        );
        assert!(live(&other.token).await, "{b:?}: other users stay");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn unused_accounts_are_sealed_and_unsealed_from_above() {
    for b in backends() {
        let app = demo_app(b).await;
        let t0 = test_clock().now();
        // Used within six months: nothing to seal.
        login(&app, "4101050001-admin", DEMO_PASSWORD)
            .await
            .expect("login");
        assert_eq!(
            app.seal_inactive_accounts().await.expect("seal"),
            0,
            "{b:?}"
        );
        app.clock.set(t0 + Duration::days(170));
        // These keep signing in; every other account goes unused.
        let edu = login(&app, "edu410105", DEMO_PASSWORD).await.expect("edu");
        let sec = login(&app, "secadmin", DEMO_PASSWORD).await.expect("sec");
        let other = login(&app, "edu440106", DEMO_PASSWORD).await.expect("peer");
        login(&app, "4101050002-admin", DEMO_PASSWORD)
            .await
            .expect("school");
        exec(
            &app.db,
            "UPDATE users SET last_login_at = created_at WHERE username = '4101050002-admin'",
        )
        .await
        .expect("make it unused (its session stays)");
        app.clock.set(t0 + Duration::days(181));
        let sealed = app.seal_inactive_accounts().await.expect("seal");
        assert!(sealed > 3000, "{b:?}: {sealed}");
        assert_eq!(
            app.seal_inactive_accounts().await.expect("again"),
            0,
            "{b:?}: sealed once"
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE u.username = '4101050002-admin'"
            )
            .await,
            0,
            "{b:?}: the sealed account's sessions end"
        );
        // The right password gets `account_sealed`; a wrong one the same answer as for an
        // unknown user (no hint that the account exists or is sealed).
        assert_eq!(
            refused(login(&app, "4101050001-admin", DEMO_PASSWORD).await),
            ErrorCode::AccountSealed
        );
        assert_eq!(
            refused(login(&app, "4101050001-admin", "wrong").await),
            ErrorCode::Unauthenticated
        );
        // Unsealing: not the school itself, not a peer authority; the authority above, or the
        // security administrator.
        let reviewer_sealed = "4101050001-reviewer";
        assert_eq!(
            refused(app.unseal_account(&other.user, "4101050001-admin").await),
            ErrorCode::NotFound,
            "{b:?}: another province's authority"
        );
        app.unseal_account(&edu.user, "4101050001-admin")
            .await
            .expect("the county authority above");
        assert_eq!(
            refused(app.unseal_account(&edu.user, "4101050001-admin").await),
            ErrorCode::Conflict,
            "{b:?}: not sealed any more"
        );
        assert_eq!(
            refused(app.unseal_account(&edu.user, "edu410105-leader").await),
            ErrorCode::NotFound,
            "{b:?}: not its own level"
        );
        app.unseal_account(&sec.user, reviewer_sealed)
            .await
            .expect("security administrator");
        login(&app, "4101050001-admin", DEMO_PASSWORD)
            .await
            .expect("unsealed");
        // Unsealed accounts are not sealed again by the next run.
        assert_eq!(app.seal_inactive_accounts().await.expect("seal"), 0);
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'account_unseal'"
            )
            .await,
            2
        );
        assert!(matches!(
            audit::verify(&app.db).await.expect("verify"),
            ChainCheck::Intact { .. }
        ));
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_answer_alike_until_the_address_is_throttled() {
    for b in backends() {
        let app = demo_app(b).await;
        let ip = "203.0.113.77";
        let answer = |r: AppResult<LoginOk>| match r {
            Err(e) => {
                let d = e.to_domain();
                (d.code, d.message)
            }
            Ok(_) => panic!("logged in"),
        };
        let unknown = answer(app.login("nosuch", "x", ip, SessionKind::Api).await);
        let known = answer(app.login("moe", "x", ip, SessionKind::Api).await);
        assert_eq!(unknown, known, "{b:?}: same code and message");
        for i in 2..20 {
            let name = format!("ghost{i}");
            let _ = app.login(&name, "x", ip, SessionKind::Api).await;
        }
        assert_eq!(
            refused(app.login("moe", DEMO_PASSWORD, ip, SessionKind::Api).await),
            ErrorCode::TooManyRequests,
            "{b:?}: 20 failures from one address"
        );
        app.login("moe", DEMO_PASSWORD, "203.0.113.78", SessionKind::Api)
            .await
            .expect("another address");
        app.clock.set(test_clock().now() + Duration::minutes(16));
        app.login("moe", DEMO_PASSWORD, ip, SessionKind::Api)
            .await
            .expect("the window has passed");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn totp_is_enrolled_confirmed_then_required_at_login() {
    for b in backends() {
        let app = demo_app(b).await;
        let now = test_clock().now();
        let name = "edu410105";
        let u = user(&app, name).await;
        // School accounts do not use it under the default policy.
        let school = user(&app, "4101050001-admin").await;
        assert_eq!(refused(app.totp_begin(&school).await), ErrorCode::Forbidden);
        let e = app.totp_begin(&u).await.expect("begin");
        assert!(
            e.otpauth_uri.starts_with("otpauth://totp/"),
            "{}",
            e.otpauth_uri
        );
        assert!(e.otpauth_uri.contains(&format!("secret={}", e.secret)));
        // Not required before confirmation.
        login(&app, name, DEMO_PASSWORD).await.expect("no code yet");
        assert_eq!(
            refused(app.totp_confirm(&u, "000000").await),
            ErrorCode::ValidationFailed
        );
        let code = totp_code(&e.secret, name, now).expect("code");
        app.totp_confirm(&u, &code).await.expect("confirm");
        assert!(app.totp_enabled(&u).await.expect("enabled"));
        assert_eq!(
            refused(app.totp_begin(&u).await),
            ErrorCode::Conflict,
            "{b:?}: no silent re-enrolment"
        );
        // Now the password alone gets `totp_required`.
        assert_eq!(
            refused(login(&app, name, DEMO_PASSWORD).await),
            ErrorCode::TotpRequired
        );
        // The code used for confirmation cannot be replayed; a wrong code is a failure.
        let with = |code: String| {
            let app = app.clone();
            async move {
                app.login_with_totp(name, DEMO_PASSWORD, Some(&code), IP, SessionKind::Api)
                    .await
            }
        };
        assert_eq!(
            refused(with(code.clone()).await),
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            refused(with("123456".into()).await),
            ErrorCode::Unauthenticated
        );
        let later = now + Duration::seconds(60);
        app.clock.set(later);
        let next = totp_code(&e.secret, name, later).expect("code");
        with(next.clone()).await.expect("right code");
        assert_eq!(
            refused(with(next).await),
            ErrorCode::Unauthenticated,
            "{b:?}: each code once"
        );
        // A wrong password with a right code is still a wrong password.
        let later = later + Duration::seconds(60);
        app.clock.set(later);
        let code = totp_code(&e.secret, name, later).expect("code");
        assert_eq!(
            refused(
                app.login_with_totp(name, "wrong", Some(&code), IP, SessionKind::Api)
                    .await
            ),
            ErrorCode::Unauthenticated
        );
        // A lost phone: only the security administrator removes the second factor.
        assert_eq!(
            refused(app.reset_totp(&u, name).await),
            ErrorCode::Forbidden
        );
        let sec = user(&app, "secadmin").await;
        assert_eq!(
            refused(app.reset_totp(&sec, "nosuchuser").await),
            ErrorCode::NotFound
        );
        app.reset_totp(&sec, name).await.expect("reset");
        assert!(!app.totp_enabled(&u).await.expect("enabled"));
        login(&app, name, DEMO_PASSWORD)
            .await
            .expect("password alone again");
        app.totp_begin(&u).await.expect("may enrol again");
        // The operator may switch the second factor off.
        app.set_accounts(AccountPolicy {
            totp_required: TotpRequired::None,
            ..AccountPolicy::default()
        });
        login(&app, name, DEMO_PASSWORD).await.expect("policy none");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn the_audit_administrator_reads_the_trail_and_nothing_else() {
    for b in backends() {
        let app = demo_app(b).await;
        let auditor = user(&app, "auditor").await;
        let moe = user(&app, "moe").await;
        let list = app
            .audit_entries(&auditor, &AuditFilter::default(), all())
            .await
            .expect("list");
        assert!(list.total >= 3, "{b:?}: logins are audited");
        assert_eq!(list.items[0].action, "login", "newest first");
        let logins = app
            .audit_entries(
                &auditor,
                &AuditFilter {
                    action: Some("login".into()),
                    actor: Some("moe".into()),
                    ..AuditFilter::default()
                },
                all(),
            )
            .await
            .expect("filtered");
        assert_eq!(logins.total, 1, "{b:?}");
        for other in [
            &moe,
            &user(&app, "secadmin").await,
            &user(&app, "sysadmin").await,
        ] {
            assert_eq!(
                refused(
                    app.audit_entries(other, &AuditFilter::default(), all())
                        .await
                ),
                ErrorCode::Forbidden
            );
        }
        // No student data through the use cases either: the separated administrators' scope
        // covers no school.
        for name in ["auditor", "sysadmin", "secadmin"] {
            let u = user(&app, name).await;
            assert!(
                !u.scope().covers_school(1, "410105"),
                "{b:?}: {name} sees no school"
            );
        }
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn pruning_keeps_the_chain_verifiable_and_tampering_visible() {
    for b in backends() {
        let app = demo_app(b).await;
        let t0 = test_clock().now();
        user(&app, "moe").await;
        user(&app, "edu410105").await;
        let old: i64 = count(&app.db, "SELECT COUNT(*) FROM audit_log").await;
        app.clock.set(t0 + Duration::days(200));
        user(&app, "4101050001-admin").await;
        user(&app, "4101050001-reviewer").await;
        assert_eq!(
            refused(app.prune_audit(179).await),
            ErrorCode::ValidationFailed,
            "{b:?}: at least 180 days are kept"
        );
        let r = app.prune_audit(180).await.expect("prune");
        assert_eq!(r.removed as i64, old, "{b:?}: the old rows go");
        assert_eq!(r.anchor_seq, Some(old));
        // Two recent logins and the prune's own row stay; the chain verifies from the anchor.
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM audit_log").await, 3);
        assert_eq!(
            audit::verify(&app.db).await.expect("verify"),
            ChainCheck::Intact { rows: 3 },
            "{b:?}"
        );
        // Nothing more to prune; verification still intact.
        assert_eq!(app.prune_audit(180).await.expect("again").removed, 0);
        // Tampering after pruning is still found: an altered row, then a moved anchor.
        let first = old + 1;
        exec(
            &app.db,
            &format!("UPDATE audit_log SET actor_name = 'someone' WHERE seq = {first}"),
        )
        .await
        .expect("tamper");
        assert!(
            matches!(audit::verify(&app.db).await.expect("verify"), ChainCheck::Broken { seq, .. } if seq == first),
            "{b:?}"
        );
        exec(
            &app.db,
            &format!("UPDATE audit_log SET actor_name = '4101050001-admin' WHERE seq = {first}"),
        )
        .await
        .expect("restore");
        assert!(matches!(
            audit::verify(&app.db).await.expect("verify"),
            ChainCheck::Intact { .. }
        ));
        exec(
            &app.db,
            &format!("DELETE FROM audit_log WHERE seq = {first}"),
        )
        .await
        .expect("delete");
        assert!(
            matches!(
                audit::verify(&app.db).await.expect("verify"),
                ChainCheck::Broken { .. }
            ),
            "{b:?}: a removed row after the anchor"
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn demo_accounts_are_not_sealed_within_six_months_of_loading() {
    for b in backends() {
        // Loaded seven months after the dataset's fixed school-year date (2026-08-31).
        let loaded = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2027, 4, 1, 1, 0, 0)
            .single()
            .expect("time");
        let db = xueji_app::testing::empty_db(b).await;
        let app = App::new(db, xueji_app::Clock::fixed(loaded))
            .await
            .expect("app");
        app.seed_demo().await.expect("seed");
        assert_eq!(
            app.seal_inactive_accounts().await.expect("seal"),
            0,
            "{b:?}"
        );
        login(&app, "moe", DEMO_PASSWORD)
            .await
            .expect("API.md's login works");
        app.clock.set(loaded + Duration::days(181));
        assert!(app.seal_inactive_accounts().await.expect("seal") > 3000);
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn a_locked_unknown_account_reads_like_a_locked_known_one() {
    for b in backends() {
        let app = demo_app(b).await;
        let t0 = test_clock().now();
        let answer = |name: &'static str| {
            let app = app.clone();
            async move {
                match app
                    .login(name, "wrong", "203.0.113.90", SessionKind::Api)
                    .await
                {
                    Err(e) => {
                        let d = e.to_domain();
                        (d.code, d.message)
                    }
                    Ok(_) => panic!("logged in"),
                }
            }
        };
        for minute in [0, 1, 2, 3, 4, 5, 7, 12, 19, 21] {
            app.clock.set(t0 + Duration::minutes(minute));
            let known = answer("edu410102").await;
            let unknown = answer("edu999998").await;
            assert_eq!(known, unknown, "{b:?}: minute {minute}");
        }
        dispose(&app.db).await;
    }
}

/// A new account made by the system administrator, its initial password already changed to
/// `Mine#Pass2026`; returns the signed-in answer.
async fn fresh_account(app: &App, name: &str, role: &str, org: Option<&str>) -> LoginOk {
    let sys = user(app, "sysadmin").await;
    app.create_account(
        &sys,
        NewAccount {
            username: name.into(),
            display_name: "新用户".into(),
            role: role.into(),
            org_code: org.map(str::to_string),
            initial_password: "Init#Pass2026".into(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create {name}: {e}"));
    let ok = login(app, name, "Init#Pass2026").await.expect("login");
    app.change_password(&ok.user, "Init#Pass2026", "Mine#Pass2026", None)
        .await
        .expect("change");
    login(app, name, "Mine#Pass2026").await.expect("login")
}

/// Whether the session of `token` must enrol a second factor first.
async fn due(app: &App, token: &str) -> bool {
    app.session(token, SessionKind::Api)
        .await
        .expect("session")
        .expect("live")
        .must_enrol_totp
}

#[tokio::test]
async fn authority_and_national_accounts_must_enrol_totp_unless_exempt() {
    for b in backends() {
        let app = demo_app(b).await;
        let now = test_clock().now();
        // The demo accounts keep API.md's password-only login: exempt.
        for name in ["moe", "edu410105", "sysadmin", "4101050001-admin"] {
            let ok = login(&app, name, DEMO_PASSWORD).await.expect("demo login");
            assert!(!ok.must_enrol_totp, "{b:?}: {name} is exempt");
        }
        let exempt = count(
            &app.db,
            "SELECT COUNT(*) FROM users WHERE totp_exempt = TRUE",
        )
        .await;
        assert_eq!(
            exempt,
            count(&app.db, "SELECT COUNT(*) FROM users").await,
            "{b:?}: every demo account"
        );
        // New authority and national accounts must enrol; school accounts need not.
        let county = fresh_account(&app, "county-op", "authority_admin", Some("410105")).await;
        assert!(county.must_enrol_totp, "{b:?}");
        assert!(due(&app, &county.token).await);
        let national = fresh_account(&app, "moe-op", "national_admin", None).await;
        assert!(national.must_enrol_totp, "{b:?}");
        let school = fresh_account(&app, "school-op", "school_admin", Some("4101050001")).await;
        assert!(!school.must_enrol_totp, "{b:?}");
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM users WHERE totp_exempt = TRUE AND username LIKE '%-op'"
            )
            .await,
            0,
            "{b:?}: created accounts are never exempt"
        );
        // Enrolment lifts the requirement; from then on the login asks for the code.
        let e = app.totp_begin(&county.user).await.expect("begin");
        assert!(due(&app, &county.token).await, "{b:?}: not before the code");
        let pending = app.totp_pending(&county.user).await.expect("pending");
        assert_eq!(
            pending.map(|p| p.secret),
            Some(e.secret.clone()),
            "the enrolment page shows the same key again"
        );
        let code = totp_code(&e.secret, "county-op", now).expect("code");
        app.totp_confirm(&county.user, &code)
            .await
            .expect("confirm");
        assert!(!due(&app, &county.token).await, "{b:?}: enrolled");
        assert_eq!(
            refused(login(&app, "county-op", "Mine#Pass2026").await),
            ErrorCode::TotpRequired
        );
        let later = now + Duration::seconds(60);
        app.clock.set(later);
        let code = totp_code(&e.secret, "county-op", later).expect("code");
        let ok = app
            .login_with_totp(
                "county-op",
                "Mine#Pass2026",
                Some(&code),
                IP,
                SessionKind::Api,
            )
            .await
            .expect("password and code");
        assert!(!ok.must_enrol_totp);
        // The security administrator may exempt an account (a script's) and end the exemption.
        let sec = user(&app, "secadmin").await;
        app.set_totp_exempt(&sec, "moe-op", true)
            .await
            .expect("exempt");
        assert!(!due(&app, &national.token).await, "{b:?}: exempt");
        app.set_totp_exempt(&sec, "moe-op", false)
            .await
            .expect("no longer");
        assert!(due(&app, &national.token).await, "{b:?}: required again");
        for (who, target) in [
            ("moe", "moe-op"),
            ("sysadmin", "moe-op"),
            ("secadmin", "secadmin"),
        ] {
            let actor = user(&app, who).await;
            assert_eq!(
                refused(app.set_totp_exempt(&actor, target, true).await),
                ErrorCode::Forbidden,
                "{b:?}: {who} on {target}"
            );
        }
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'totp_exempt'"
            )
            .await,
            2
        );
        // The operator decides: `none` lifts the requirement, `all` extends it to schools.
        app.set_accounts(AccountPolicy {
            totp_required: TotpRequired::None,
            ..AccountPolicy::default()
        });
        assert!(!due(&app, &national.token).await, "{b:?}: none");
        app.set_accounts(AccountPolicy {
            totp_required: TotpRequired::All,
            ..AccountPolicy::default()
        });
        assert!(due(&app, &school.token).await, "{b:?}: all");
        assert!(
            !due(&app, &user_token(&app, "4101050001-admin").await).await,
            "{b:?}: the demo's school accounts stay exempt"
        );
        dispose(&app.db).await;
    }
}

async fn user_token(app: &App, name: &str) -> String {
    login(app, name, DEMO_PASSWORD).await.expect("login").token
}

#[tokio::test]
async fn totp_secrets_are_encrypted_at_rest_and_plaintext_ones_migrate() {
    for b in backends() {
        let app = demo_app(b).await;
        let now = test_clock().now();
        let u = user(&app, "edu410105").await;
        let e = app.totp_begin(&u).await.expect("begin");
        let stored: String = xueji_app::on_pool!(app.db.read(), p => sqlx::query_scalar(
            "SELECT totp_secret FROM users WHERE username = 'edu410105'"
        ).fetch_one(p).await)
        .unwrap();
        assert!(stored.starts_with("enc1:"), "{b:?}: {stored}");
        assert!(
            !stored.contains(&e.secret),
            "{b:?}: the key is not in the row"
        );
        app.totp_confirm(&u, &totp_code(&e.secret, "edu410105", now).unwrap())
            .await
            .expect("confirm");
        // A secret stored before encryption (plaintext) keeps working and is encrypted when used.
        let plain = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        exec(
            &app.db,
            &format!(
                "UPDATE users SET totp_secret = '{plain}', totp_enabled = TRUE WHERE username IN ('edu410100', 'edu410000')"
            ),
        )
        .await
        .unwrap();
        let later = now + Duration::seconds(60);
        app.clock.set(later);
        let code = |name: &str| totp_code(plain, name, later).unwrap();
        app.login_with_totp(
            "edu410100",
            DEMO_PASSWORD,
            Some(&code("edu410100")),
            IP,
            SessionKind::Api,
        )
        .await
        .expect("a plaintext secret still signs in");
        let plaintext_left = "SELECT COUNT(*) FROM users WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE 'enc1:%'";
        assert_eq!(
            count(&app.db, plaintext_left).await,
            1,
            "{b:?}: encrypted on use"
        );
        // The start-up pass encrypts the rest.
        assert_eq!(app.encrypt_plaintext_secrets().await.expect("pass"), 1);
        assert_eq!(count(&app.db, plaintext_left).await, 0, "{b:?}");
        app.login_with_totp(
            "edu410000",
            DEMO_PASSWORD,
            Some(&code("edu410000")),
            IP,
            SessionKind::Api,
        )
        .await
        .expect("still signs in after the pass");
        // Without the key (or with another one) the second factor cannot be checked: a server
        // fault, never a sign-in.
        let keyless = App::new(app.db.clone(), app.clock.clone())
            .await
            .expect("app");
        let later = later + Duration::seconds(60);
        app.clock.set(later);
        let code = totp_code(&e.secret, "edu410105", later).unwrap();
        let r = keyless
            .login_with_totp(
                "edu410105",
                DEMO_PASSWORD,
                Some(&code),
                IP,
                SessionKind::Api,
            )
            .await;
        assert_eq!(refused(r), ErrorCode::Internal, "{b:?}: no key");
        let moe = user(&keyless, "moe").await;
        assert_eq!(
            refused(keyless.totp_begin(&moe).await),
            ErrorCode::Forbidden,
            "{b:?}: no enrolment without a key"
        );
        keyless.set_secret_key(xueji_app::secret_key::SecretKey::random());
        let r = keyless
            .login_with_totp(
                "edu410105",
                DEMO_PASSWORD,
                Some(&code),
                IP,
                SessionKind::Api,
            )
            .await;
        assert_eq!(refused(r), ErrorCode::Internal, "{b:?}: another key");
        app.login_with_totp(
            "edu410105",
            DEMO_PASSWORD,
            Some(&code),
            IP,
            SessionKind::Api,
        )
        .await
        .expect("the right key");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn the_system_administrator_administers_accounts_within_the_separation() {
    use xueji_app::account_admin::{AccountFilter, RoleChange};
    for b in backends() {
        let app = demo_app(b).await;
        let sys = user(&app, "sysadmin").await;
        let page = |per_page| xueji_app::paging::Page { page: 1, per_page };
        // The list: filters by role, region subtree and school, paged with the total.
        let f = AccountFilter {
            role: Some("school_admin".into()),
            region: Some("410105".into()),
            ..Default::default()
        };
        let list = app.list_accounts(&sys, &f, page(2)).await.expect("list");
        assert_eq!(list.items.len(), 2, "{b:?}");
        assert!(list.total >= 2, "{b:?}: {}", list.total);
        assert!(list.items.iter().all(|a| {
            a.role == "school_admin"
                && a.region_code
                    .as_deref()
                    .is_some_and(|r| r.starts_with("410105"))
        }));
        let henan = AccountFilter {
            region: Some("410000".into()),
            ..Default::default()
        };
        let all_henan = app.list_accounts(&sys, &henan, all()).await.expect("list");
        assert!(
            all_henan.items.iter().any(|a| a.username == "edu410105")
                && all_henan
                    .items
                    .iter()
                    .any(|a| a.username == "4101050001-reviewer")
                && !all_henan.items.iter().any(|a| a.username == "edu440106"),
            "{b:?}: the region's authorities and schools"
        );
        let one_school = AccountFilter {
            school: Some("4101050001".into()),
            ..Default::default()
        };
        let names: Vec<String> = app
            .list_accounts(&sys, &one_school, all())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|a| a.username)
            .collect();
        assert_eq!(names, ["4101050001-admin", "4101050001-reviewer"], "{b:?}");
        let bad = AccountFilter {
            region: Some("41".into()),
            ..Default::default()
        };
        assert_eq!(
            refused(app.list_accounts(&sys, &bad, all()).await),
            ErrorCode::ValidationFailed
        );
        // Only the system administrator; never the separated administrators' accounts.
        for other in ["moe", "secadmin", "auditor", "edu410000"] {
            let o = user(&app, other).await;
            assert_eq!(
                refused(app.list_accounts(&o, &f, all()).await),
                ErrorCode::Forbidden,
                "{other}"
            );
            assert_eq!(
                refused(app.disable_account(&o, "4101050001-admin").await),
                ErrorCode::Forbidden,
                "{other}"
            );
        }
        for target in ["secadmin", "auditor", "sysadmin"] {
            assert_eq!(
                refused(app.reset_account_password(&sys, target, None).await),
                ErrorCode::Forbidden,
                "{b:?}: {target}"
            );
        }
        assert_eq!(
            refused(app.disable_account(&sys, "nosuch").await),
            ErrorCode::NotFound
        );

        // 停用: no more sign-in, sessions end; 启用: back.
        let target = "4101050001-reviewer";
        let before = user_token(&app, target).await;
        let a = app.disable_account(&sys, target).await.expect("disable");
        assert!(a.disabled);
        assert_eq!(
            refused(app.disable_account(&sys, target).await),
            ErrorCode::Conflict
        );
        assert!(
            app.authenticate(&before, SessionKind::Api)
                .await
                .unwrap()
                .is_none(),
            "{b:?}: its sessions ended"
        );
        assert_eq!(
            refused(login(&app, target, DEMO_PASSWORD).await),
            ErrorCode::AccountDisabled
        );
        // A wrong password still reads as a wrong password (nothing revealed).
        assert_eq!(
            refused(login(&app, target, "wrong").await),
            ErrorCode::Unauthenticated
        );
        assert!(
            !app.enable_account(&sys, target)
                .await
                .expect("enable")
                .disabled
        );
        login(&app, target, DEMO_PASSWORD).await.expect("enabled");

        // 重置密码: a generated initial password that must be changed; the old one is gone.
        let before = user_token(&app, target).await;
        let r = app
            .reset_account_password(&sys, target, None)
            .await
            .expect("reset");
        assert_eq!(r.username, target);
        assert!(
            app.authenticate(&before, SessionKind::Api)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            refused(login(&app, target, DEMO_PASSWORD).await),
            ErrorCode::Unauthenticated
        );
        let ok = login(&app, target, &r.initial_password)
            .await
            .expect("new initial");
        assert!(ok.user.must_change_password, "{b:?}");
        assert_eq!(
            refused(
                app.change_password(&ok.user, &r.initial_password, DEMO_PASSWORD, None)
                    .await
            ),
            ErrorCode::WeakPassword,
            "{b:?}: the password before the reset is in the history"
        );
        assert_eq!(
            refused(
                app.reset_account_password(&sys, target, Some("short"))
                    .await
            ),
            ErrorCode::WeakPassword
        );
        app.reset_account_password(&sys, target, Some("Given#Pass2026"))
            .await
            .expect("a chosen initial password");
        login(&app, target, "Given#Pass2026").await.expect("login");

        // 修改角色: within the business roles, with a matching organisation.
        let change = |role: &str, org: Option<&str>| RoleChange {
            role: role.into(),
            org_code: org.map(str::to_string),
        };
        for (role, org, field) in [
            ("security_admin", None, "role"),
            ("nonsense", None, "role"),
            ("authority_admin", Some("999999"), "org_code"),
            ("school_admin", Some("0000000000"), "org_code"),
        ] {
            let e = app
                .change_account_role(&sys, target, &change(role, org))
                .await
                .expect_err(role);
            assert_eq!(
                (e.code(), e.to_domain().field),
                (ErrorCode::ValidationFailed, Some(field)),
                "{b:?}: {role}"
            );
        }
        let before = login(&app, target, "Given#Pass2026")
            .await
            .expect("login")
            .token;
        let a = app
            .change_account_role(&sys, target, &change("authority_admin", Some("410105")))
            .await
            .expect("to the county");
        assert_eq!(
            (a.role.as_str(), a.org_code.as_deref()),
            ("authority_admin", Some("410105"))
        );
        assert!(
            app.authenticate(&before, SessionKind::Api)
                .await
                .unwrap()
                .is_none()
        );
        let a = app
            .change_account_role(&sys, target, &change("school_reviewer", Some("4101050002")))
            .await
            .expect("to another school");
        assert_eq!(a.org_code.as_deref(), Some("4101050002"));

        // Each action is in the audit trail, with the administrator as actor and no password.
        let actions = count(
            &app.db,
            "SELECT COUNT(*) FROM audit_log WHERE actor_name = 'sysadmin' AND action IN \
             ('account_disable', 'account_enable', 'account_password_reset', 'account_role_change')",
        )
        .await;
        assert_eq!(actions, 6, "{b:?}");
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM audit_log WHERE after_json LIKE '%Given#Pass2026%' \
                 OR after_json LIKE '%$argon2%'"
            )
            .await,
            0,
            "{b:?}: no password in the trail"
        );
        dispose(&app.db).await;
    }
}
