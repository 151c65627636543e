//! Which routes a signed-in user may reach before any handler runs:
//!
//! - a user who must change an initial or expired password reaches only `auth/*` (API) or the
//!   change form (pages);
//! - then a user whose role must use the TOTP second factor and who has not enrolled reaches only
//!   `auth/*` (enrolment is `auth/totp`) or the enrolment page;
//! - the separated administrators (三员分立) reach only their own routes: the system
//!   administrator the accounts (API and the page 账号管理), the security administrator unsealing
//!   and the security settings,
//!   the audit administrator the audit trail. Every other route refuses them, so no student data
//!   reaches them whatever a handler's own checks say.
//!
//! The handlers check again (defence in depth); this gate is the one place that shows the whole
//! rule.

use xueji_app::auth::CurrentUser;
use xueji_domain::access::Role;
use xueji_domain::{Error, ErrorCode};

/// The change form every forced user is sent to.
pub const PASSWORD_PAGE: &str = "/account/password";
/// The TOTP enrolment page every user who must enrol is sent to.
pub const TOTP_PAGE: &str = "/account/totp";
/// 账号管理, the system administrator's page.
pub const ACCOUNTS_PAGE: &str = "/accounts";

/// What the gate needs to know about a signed-in user besides who they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// The role must use the TOTP second factor and the account has not enrolled (nor is exempt).
    pub must_enrol_totp: bool,
}

fn separated_refusal() -> Error {
    Error::forbidden("三员分立：系统管理员、安全管理员、安全审计员只能使用各自的管理功能")
}

/// Why an API call of `user` to `path` is refused before its handler, if it is.
pub fn api_refusal(user: &CurrentUser, standing: Standing, path: &str) -> Option<Error> {
    if path.starts_with("/api/v1/auth/") {
        return None;
    }
    if user.must_change_password {
        return Some(Error::new(
            ErrorCode::PasswordChangeRequired,
            "请先修改初始密码或已过期的密码（POST /api/v1/auth/password）",
        ));
    }
    if standing.must_enrol_totp {
        return Some(Error::new(
            ErrorCode::TotpEnrolmentRequired,
            "按安全策略，本账号须先绑定动态口令（POST /api/v1/auth/totp，再 POST /api/v1/auth/totp/confirm）",
        ));
    }
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    match user.role {
        Role::AuditAdmin if under("/api/v1/audit") => None,
        Role::SystemAdmin if under("/api/v1/accounts") => None,
        Role::SecurityAdmin if under("/api/v1/accounts") || under("/api/v1/security") => None,
        r if r.is_separated_admin() => Some(separated_refusal()),
        _ if under("/api/v1/audit") => Some(Error::forbidden("只有安全审计员可以查看操作日志")),
        _ if under("/api/v1/security") => Some(Error::forbidden("只有安全管理员可以查看安全设置")),
        _ => None,
    }
}

/// What a page request of `user` to `path` meets before its handler.
pub enum PageGate {
    Pass,
    Redirect(&'static str),
    Refuse(Error),
}

pub fn page_gate(user: &CurrentUser, standing: Standing, path: &str) -> PageGate {
    if path == "/logout" || path == PASSWORD_PAGE {
        return PageGate::Pass;
    }
    if user.must_change_password {
        return PageGate::Redirect(PASSWORD_PAGE);
    }
    if path == TOTP_PAGE || path == "/account/totp/confirm" {
        return PageGate::Pass;
    }
    if standing.must_enrol_totp {
        return PageGate::Redirect(TOTP_PAGE);
    }
    if !user.role.is_separated_admin() {
        return if path == "/audit" {
            PageGate::Refuse(Error::forbidden("只有安全审计员可以查看操作日志"))
        } else {
            PageGate::Pass
        };
    }
    let landing = if user.role == Role::AuditAdmin {
        "/audit"
    } else {
        "/account"
    };
    if path == "/" {
        return PageGate::Redirect(landing);
    }
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/account")
        || (user.role == Role::AuditAdmin && under("/audit"))
        || (user.role == Role::SystemAdmin && under(ACCOUNTS_PAGE))
    {
        PageGate::Pass
    } else {
        PageGate::Refuse(separated_refusal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xueji_domain::access::OrgRef;

    fn user(role: Role, must_change: bool) -> CurrentUser {
        CurrentUser {
            id: 1,
            username: "u".into(),
            display_name: "u".into(),
            role,
            org: OrgRef::National,
            org_name: String::new(),
            school_id: None,
            region_code: None,
            must_change_password: must_change,
        }
    }

    #[test]
    fn the_auditor_reaches_the_audit_trail_and_auth_only() {
        let a = user(Role::AuditAdmin, false);
        assert!(api_refusal(&a, Standing::default(), "/api/v1/audit").is_none());
        assert!(api_refusal(&a, Standing::default(), "/api/v1/auth/me").is_none());
        for p in [
            "/api/v1/students",
            "/api/v1/schools",
            "/api/v1/transfers/1",
            "/api/v1/accounts",
            "/api/v1/auditx",
        ] {
            assert!(api_refusal(&a, Standing::default(), p).is_some(), "{p}");
        }
        assert!(matches!(
            page_gate(&a, Standing::default(), "/"),
            PageGate::Redirect("/audit")
        ));
        assert!(matches!(
            page_gate(&a, Standing::default(), "/students"),
            PageGate::Refuse(_)
        ));
    }

    #[test]
    fn business_roles_never_reach_the_audit_trail() {
        for r in [Role::NationalAdmin, Role::AuthorityAdmin, Role::SchoolAdmin] {
            assert!(api_refusal(&user(r, false), Standing::default(), "/api/v1/audit").is_some());
            assert!(
                api_refusal(&user(r, false), Standing::default(), "/api/v1/students").is_none()
            );
            assert!(matches!(
                page_gate(&user(r, false), Standing::default(), "/audit"),
                PageGate::Refuse(_)
            ));
        }
    }

    #[test]
    fn a_forced_change_leaves_only_auth_and_the_form() {
        let u = user(Role::SchoolAdmin, true);
        assert_eq!(
            api_refusal(&u, Standing::default(), "/api/v1/students").map(|e| e.code),
            Some(ErrorCode::PasswordChangeRequired)
        );
        assert!(api_refusal(&u, Standing::default(), "/api/v1/auth/password").is_none());
        assert!(matches!(
            page_gate(&u, Standing::default(), "/students"),
            PageGate::Redirect(PASSWORD_PAGE)
        ));
        assert!(matches!(
            page_gate(&u, Standing::default(), PASSWORD_PAGE),
            PageGate::Pass
        ));
    }

    #[test]
    fn a_due_enrolment_leaves_only_auth_and_the_enrolment_page_after_the_password() {
        let due = Standing {
            must_enrol_totp: true,
        };
        let u = user(Role::AuthorityAdmin, false);
        assert_eq!(
            api_refusal(&u, due, "/api/v1/students").map(|e| e.code),
            Some(ErrorCode::TotpEnrolmentRequired)
        );
        for p in [
            "/api/v1/auth/totp",
            "/api/v1/auth/totp/confirm",
            "/api/v1/auth/me",
        ] {
            assert!(api_refusal(&u, due, p).is_none(), "{p}");
        }
        assert!(matches!(
            page_gate(&u, due, "/students"),
            PageGate::Redirect(TOTP_PAGE)
        ));
        assert!(matches!(page_gate(&u, due, TOTP_PAGE), PageGate::Pass));
        assert!(matches!(
            page_gate(&u, due, "/account/totp/confirm"),
            PageGate::Pass
        ));
        // The password first: a forced change still comes before enrolment.
        let both = user(Role::AuthorityAdmin, true);
        assert_eq!(
            api_refusal(&both, due, "/api/v1/students").map(|e| e.code),
            Some(ErrorCode::PasswordChangeRequired)
        );
        assert!(matches!(
            page_gate(&both, due, TOTP_PAGE),
            PageGate::Redirect(PASSWORD_PAGE)
        ));
    }

    #[test]
    fn only_the_system_administrator_reaches_the_accounts_page_among_the_three() {
        let none = Standing::default();
        assert!(matches!(
            page_gate(&user(Role::SystemAdmin, false), none, ACCOUNTS_PAGE),
            PageGate::Pass
        ));
        for r in [Role::SecurityAdmin, Role::AuditAdmin] {
            assert!(matches!(
                page_gate(&user(r, false), none, ACCOUNTS_PAGE),
                PageGate::Refuse(_)
            ));
        }
    }
}
