//! 账号管理 (`/accounts`): the system administrator's list of accounts (filters by role, region,
//! school and name; paged) with the actions 停用 / 启用, 重置密码 and 修改角色 — the same use cases
//! as `/api/v1/accounts…`. The gate lets only the system administrator of the three separated
//! administrators here; the use cases refuse every other role.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use xueji_app::account_admin::{AccountFilter, AccountRow, BUSINESS_ROLES, RoleChange};
use xueji_domain::Error;
use xueji_domain::access::Role;

use super::{Layout, PageResult, Pager, fmt_time, last_value, parse_page, user_error};
use crate::AppState;
use crate::gate::ACCOUNTS_PAGE;
use crate::session::{WebUser, check_csrf};

type Pairs = Vec<(String, String)>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ACCOUNTS_PAGE, get(page))
        .route("/accounts/disable", post(disable))
        .route("/accounts/enable", post(enable))
        .route("/accounts/password-reset", post(password_reset))
        .route("/accounts/role", post(change_role))
}

/// One row of the table.
pub struct Row {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub org: String,
    pub status: &'static str,
    pub totp: &'static str,
    pub last_login: String,
    /// A business account: the actions apply (never to the separated administrators).
    pub administrable: bool,
    pub disabled: bool,
}

impl From<AccountRow> for Row {
    fn from(a: AccountRow) -> Self {
        let role = Role::parse(&a.role);
        Row {
            administrable: role.is_some_and(|r| BUSINESS_ROLES.contains(&r)),
            role: role.map(Role::label_zh).unwrap_or("未知角色").to_string(),
            org: match (&a.org_code, &a.org_name) {
                (Some(c), Some(n)) => format!("{n}（{c}）"),
                (Some(c), None) => c.clone(),
                _ => "教育部".into(),
            },
            status: if a.disabled {
                "已停用"
            } else if a.sealed {
                "已封存"
            } else if a.must_change_password {
                "待修改初始密码"
            } else {
                "正常"
            },
            totp: if a.totp_enabled {
                "已绑定"
            } else if a.totp_exempt {
                "未绑定（豁免）"
            } else {
                "未绑定"
            },
            last_login: a.last_login_at.as_ref().map(fmt_time).unwrap_or_default(),
            disabled: a.disabled,
            username: a.username,
            display_name: a.display_name,
        }
    }
}

/// The list's filters, kept across the actions.
#[derive(Default, Clone)]
pub struct Filters {
    pub role: String,
    pub region: String,
    pub school: String,
    pub q: String,
    pub page: String,
}

impl Filters {
    fn from_pairs(pairs: &Pairs, prefix: &str) -> Self {
        let v = |k: &str| last_value(pairs, &format!("{prefix}{k}"));
        Filters {
            role: v("role"),
            region: v("region"),
            school: v("school"),
            q: v("q"),
            page: v("page"),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts.html")]
pub struct AccountsPage {
    layout: Layout,
    rows: Vec<Row>,
    pager: Pager,
    f: Filters,
    roles: Vec<(&'static str, &'static str)>,
    business_roles: Vec<(&'static str, &'static str)>,
    done: Option<String>,
    /// A password just reset: (user name, the new initial password), shown once.
    reset: Option<(String, String)>,
    error: Option<Error>,
    /// Typed values of the role form (kept on an error).
    role_username: String,
    role_role: String,
    role_org_code: String,
}

impl AccountsPage {
    /// The list's filters as hidden fields of the action forms (`f_…`).
    fn kept(&self) -> Vec<(&'static str, String)> {
        vec![
            ("f_role", self.f.role.clone()),
            ("f_region", self.f.region.clone()),
            ("f_school", self.f.school.clone()),
            ("f_q", self.f.q.clone()),
            ("f_page", self.f.page.clone()),
        ]
    }

    fn field_error(&self, field: &str) -> String {
        match &self.error {
            Some(e) if e.field == Some(field) => e.message.clone(),
            _ => String::new(),
        }
    }

    fn form_error(&self) -> String {
        match &self.error {
            Some(e) if e.field.is_none() || e.field == Some("region") => e.message.clone(),
            _ => String::new(),
        }
    }
}

async fn render(s: &AppState, u: &WebUser, f: Filters) -> PageResult<AccountsPage> {
    let layout = Layout::new(&s.app, u, "账号管理", ACCOUNTS_PAGE).await;
    let page = parse_page(&f.page, "").map_err(|e| layout.fail(e))?;
    let filter = AccountFilter {
        role: Some(f.role.clone()),
        region: Some(f.region.clone()),
        school: Some(f.school.clone()),
        q: Some(f.q.clone()),
    };
    let (rows, total, error) = match s.app.list_accounts(&u.user, &filter, page).await {
        Ok(list) => (list.items, list.total, None),
        Err(e) => {
            let e = user_error(e);
            if e.field.is_none() {
                // Not the filters' fault (a refusal): the whole page is refused.
                return Err(layout.fail(e));
            }
            (vec![], 0, Some(e))
        }
    };
    let keep = [
        ("role", f.role.as_str()),
        ("region", f.region.as_str()),
        ("school", f.school.as_str()),
        ("q", f.q.as_str()),
    ];
    let pager = Pager::new(ACCOUNTS_PAGE, &keep, page.page, page.per_page, total);
    let label = |r: Role| (r.as_str(), r.label_zh());
    Ok(AccountsPage {
        layout,
        rows: rows.into_iter().map(Row::from).collect(),
        pager,
        roles: [
            Role::SchoolAdmin,
            Role::SchoolReviewer,
            Role::AuthorityAdmin,
            Role::NationalAdmin,
            Role::SystemAdmin,
            Role::SecurityAdmin,
            Role::AuditAdmin,
        ]
        .into_iter()
        .map(label)
        .collect(),
        business_roles: BUSINESS_ROLES.into_iter().map(label).collect(),
        f,
        done: None,
        reset: None,
        error,
        role_username: String::new(),
        role_role: "school_admin".into(),
        role_org_code: String::new(),
    })
}

pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<AccountsPage> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    render(&s, &u, Filters::from_pairs(&pairs, "")).await
}

/// Runs one action from a form of the page and shows the page again with its outcome.
async fn act(
    s: AppState,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
    run: impl AsyncFnOnce(&AppState, &WebUser, &Pairs) -> Result<Outcome, Error>,
) -> PageResult<Response> {
    let pairs = form.map(|axum::Form(p)| p).unwrap_or_default();
    let layout = Layout::new(&s.app, &u, "账号管理", ACCOUNTS_PAGE).await;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| layout.fail(e))?;
    let result = run(&s, &u, &pairs).await;
    let mut p = render(&s, &u, Filters::from_pairs(&pairs, "f_")).await?;
    let status = match result {
        Ok(Outcome::Done(msg)) => {
            p.done = Some(msg);
            StatusCode::OK
        }
        Ok(Outcome::Reset(name, pw)) => {
            p.reset = Some((name, pw));
            StatusCode::OK
        }
        Err(e) => {
            if e.field.is_some() {
                // The role form's input, kept beside its errors.
                p.role_username = last_value(&pairs, "username");
                p.role_role = last_value(&pairs, "role");
                p.role_org_code = last_value(&pairs, "org_code");
            }
            let status = super::status_of(&e);
            p.error = Some(e);
            status
        }
    };
    Ok((status, p).into_response())
}

enum Outcome {
    Done(String),
    Reset(String, String),
}

pub async fn disable(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    act(s, u, form, async |s, u, pairs| {
        s.app
            .disable_account(&u.user, &last_value(pairs, "username"))
            .await
            .map(|a| Outcome::Done(format!("账号 {} 已停用，其登录已全部退出", a.username)))
            .map_err(user_error)
    })
    .await
}

pub async fn enable(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    act(s, u, form, async |s, u, pairs| {
        s.app
            .enable_account(&u.user, &last_value(pairs, "username"))
            .await
            .map(|a| Outcome::Done(format!("账号 {} 已启用", a.username)))
            .map_err(user_error)
    })
    .await
}

pub async fn password_reset(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    act(s, u, form, async |s, u, pairs| {
        s.app
            .reset_account_password(&u.user, &last_value(pairs, "username"), None)
            .await
            .map(|r| Outcome::Reset(r.username, r.initial_password))
            .map_err(user_error)
    })
    .await
}

pub async fn change_role(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    act(s, u, form, async |s, u, pairs| {
        let change = RoleChange {
            role: last_value(pairs, "role"),
            org_code: Some(last_value(pairs, "org_code")).filter(|c| !c.trim().is_empty()),
        };
        s.app
            .change_account_role(&u.user, &last_value(pairs, "username"), &change)
            .await
            .map(|a| {
                Outcome::Done(format!(
                    "账号 {} 的角色已改为{}，其登录已全部退出",
                    a.username,
                    Role::parse(&a.role).map(Role::label_zh).unwrap_or_default()
                ))
            })
            .map_err(|e| {
                let mut e = user_error(e);
                // A wrong user name is shown beside the role form's user name field.
                if e.code == xueji_domain::ErrorCode::NotFound {
                    e.field = Some("username");
                }
                e
            })
    })
    .await
}
