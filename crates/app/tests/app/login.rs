//! Login: lockout after repeated wrong passwords, per-address throttling, and refusals that do
//! not tell which part was wrong.

use chrono::Duration;
use xueji_app::auth::{LoginOk, SessionKind};
use xueji_app::seed::DEMO_PASSWORD;
use xueji_app::testing::{backends, demo_app, test_clock};
use xueji_app::{App, AppResult};
use xueji_domain::ErrorCode;

use crate::{dispose, refused};

async fn login(app: &App, name: &str, password: &str, ip: &str) -> AppResult<LoginOk> {
    app.login(name, password, ip, SessionKind::Api).await
}

#[tokio::test]
async fn five_wrong_passwords_then_locked_for_fifteen_minutes() {
    for b in backends() {
        let app = demo_app(b).await;
        let t0 = test_clock().now();
        let name = "4101050001-admin";
        for i in 1..=5 {
            assert_eq!(
                refused(login(&app, name, "wrong-password", "203.0.113.1").await),
                ErrorCode::Unauthenticated,
                "{b:?}: attempt {i}"
            );
        }
        assert_eq!(
            refused(login(&app, name, "wrong-password", "203.0.113.1").await),
            ErrorCode::AccountLocked,
            "{b:?}: the 6th wrong password locks"
        );
        // Locked: even the right password, from anywhere, is refused.
        assert_eq!(
            refused(login(&app, name, DEMO_PASSWORD, "203.0.113.2").await),
            ErrorCode::AccountLocked
        );
        app.clock
            .set(t0 + Duration::minutes(14) + Duration::seconds(59));
        assert_eq!(
            refused(login(&app, name, DEMO_PASSWORD, "203.0.113.1").await),
            ErrorCode::AccountLocked,
            "{b:?}: still locked just before 15 minutes"
        );
        // Other accounts are not affected.
        login(&app, "4101050001-reviewer", DEMO_PASSWORD, "203.0.113.1")
            .await
            .expect("other account");
        app.clock
            .set(t0 + Duration::minutes(15) + Duration::seconds(1));
        let ok = login(&app, name, DEMO_PASSWORD, "203.0.113.1")
            .await
            .expect("unlocked after 15 minutes");
        assert_eq!(ok.user.username, name);
        // A success clears the count: one more wrong password does not lock again.
        assert_eq!(
            refused(login(&app, name, "nope", "203.0.113.1").await),
            ErrorCode::Unauthenticated
        );
        login(&app, name, DEMO_PASSWORD, "203.0.113.1")
            .await
            .expect("not locked");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn unknown_user_gets_the_same_refusal() {
    for b in backends() {
        let app = demo_app(b).await;
        let unknown = refused(login(&app, "nosuchuser", "whatever", "203.0.113.9").await);
        let known = refused(login(&app, "moe", "whatever", "203.0.113.9").await);
        assert_eq!(unknown, ErrorCode::Unauthenticated, "{b:?}");
        assert_eq!(known, unknown, "{b:?}");
        // Failures older than the window are forgotten.
        app.clock.set(test_clock().now() + Duration::minutes(16));
        for _ in 0..5 {
            assert_eq!(
                refused(login(&app, "moe", "whatever", "203.0.113.9").await),
                ErrorCode::Unauthenticated
            );
        }
        login(&app, "moe", DEMO_PASSWORD, "203.0.113.9")
            .await
            .expect("not locked");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn successful_logins_are_not_limited() {
    for b in backends() {
        let app = demo_app(b).await;
        let mut tokens = std::collections::BTreeSet::new();
        for _ in 0..8 {
            let ok = login(&app, "edu410105", DEMO_PASSWORD, "203.0.113.3")
                .await
                .expect("login");
            tokens.insert(ok.token);
        }
        assert_eq!(tokens.len(), 8, "{b:?}: a new token each time");
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn sessions_authenticate_until_logout_or_expiry() {
    for b in backends() {
        let app = demo_app(b).await;
        let t0 = test_clock().now();
        let ok = login(&app, "edu410105", DEMO_PASSWORD, "203.0.113.4")
            .await
            .expect("login");
        let (who, _) = app
            .authenticate(&ok.token, SessionKind::Api)
            .await
            .expect("auth")
            .expect("live");
        assert_eq!(who.username, "edu410105");
        assert!(
            app.authenticate(&ok.token, SessionKind::Web)
                .await
                .expect("auth")
                .is_none(),
            "{b:?}: kinds differ"
        );
        assert!(
            app.authenticate(&"0".repeat(64), SessionKind::Api)
                .await
                .expect("auth")
                .is_none()
        );
        app.logout(&ok.token).await.expect("logout");
        assert!(
            app.authenticate(&ok.token, SessionKind::Api)
                .await
                .expect("auth")
                .is_none(),
            "{b:?}"
        );

        // Idle for more than 30 minutes (the default): gone.
        let ok = login(&app, "edu410105", DEMO_PASSWORD, "203.0.113.4")
            .await
            .expect("login");
        app.clock.set(t0 + Duration::minutes(31));
        assert!(
            app.authenticate(&ok.token, SessionKind::Api)
                .await
                .expect("auth")
                .is_none(),
            "{b:?}"
        );
        dispose(&app.db).await;
    }
}

#[tokio::test]
async fn many_failures_from_one_address_are_throttled() {
    for b in backends() {
        let app = demo_app(b).await;
        // 20 failures (the default limit) spread over 4 accounts (5 each, so none is locked)
        // from one address.
        let accounts: Vec<String> = ["4101050001", "4101050002"]
            .iter()
            .flat_map(|s| [format!("{s}-admin"), format!("{s}-reviewer")])
            .collect();
        for a in &accounts {
            for _ in 0..5 {
                assert_eq!(
                    refused(login(&app, a, "bad", "203.0.113.50").await),
                    ErrorCode::Unauthenticated
                );
            }
        }
        assert_eq!(
            refused(login(&app, "moe", DEMO_PASSWORD, "203.0.113.50").await),
            ErrorCode::TooManyRequests,
            "{b:?}: the address is throttled"
        );
        login(&app, "moe", DEMO_PASSWORD, "203.0.113.51")
            .await
            .expect("another address");
        dispose(&app.db).await;
    }
}
