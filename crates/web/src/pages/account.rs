//! 账号安全: `GET /account` (second factor, logout everywhere, the security settings for the
//! security administrator, account creation for the system administrator), `GET/POST
//! /account/password` (the change form every forced user is sent to), `GET/POST /account/totp`
//! and `POST /account/totp/confirm` (TOTP enrolment, where every user who must enrol is sent),
//! `POST /account/logout-all`, `POST /account/new`, and `GET /audit` (操作日志, the audit
//! administrator's only page).

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use xueji_app::accounts::{NewAccount, TotpEnrolment, TotpRequired};
use xueji_app::audit_trail::AuditFilter;
use xueji_app::secret_key;
use xueji_domain::Error;
use xueji_domain::access::Role;

use super::{
    Layout, MenuGroup, MenuSection, PageResult, Pager, fmt_time, item, last_value, parse_page,
    user_error,
};
use crate::AppState;
use crate::gate::{ACCOUNTS_PAGE, PASSWORD_PAGE, TOTP_PAGE};
use crate::session::{SESSION_COOKIE, WebUser, check_csrf};

type Pairs = Vec<(String, String)>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(page))
        .route(PASSWORD_PAGE, get(password_form).post(password_submit))
        .route(TOTP_PAGE, get(totp_page).post(totp_begin))
        .route("/account/totp/confirm", post(totp_confirm))
        .route("/account/logout-all", post(logout_all))
        .route("/account/new", post(create))
        .route("/account/unseal", post(unseal))
        .route("/account/totp-exempt", post(totp_exempt))
        .route("/audit", get(audit))
}

/// 账号安全, shown to every role at the end of the menu.
pub fn menu_section() -> MenuSection {
    MenuSection {
        title: "账号安全",
        href: None,
        current: false,
        groups: vec![MenuGroup {
            title: None,
            items: vec![
                item("账号与登录", "/account"),
                item("修改密码", PASSWORD_PAGE),
            ],
        }],
    }
}

/// The separated administrators' menu: their own tools only.
pub fn separated_menu(role: Role) -> Vec<MenuSection> {
    let mut menu = vec![];
    if role == Role::SystemAdmin {
        menu.push(MenuSection {
            title: "系统管理",
            href: None,
            current: false,
            groups: vec![MenuGroup {
                title: None,
                items: vec![item("账号管理", ACCOUNTS_PAGE)],
            }],
        });
    }
    if role == Role::AuditAdmin {
        menu.push(MenuSection {
            title: "安全审计",
            href: None,
            current: false,
            groups: vec![MenuGroup {
                title: None,
                items: vec![item("操作日志", "/audit")],
            }],
        });
    }
    menu.push(menu_section());
    menu
}

fn form_pairs(form: Result<axum::Form<Pairs>, FormRejection>) -> Pairs {
    form.map(|axum::Form(p)| p).unwrap_or_default()
}

/// One row of the security settings table.
pub struct Setting {
    pub name: &'static str,
    pub value: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "account.html")]
pub struct AccountPage {
    layout: Layout,
    username: String,
    done: Option<String>,
    error: Option<Error>,
    totp_applies: bool,
    totp_enabled: bool,
    /// Not enrolled and not required to (exempt).
    totp_exempt: bool,
    settings: Vec<Setting>,
    may_create: bool,
    /// The security administrator and the administrators of authorities and the Ministry unseal
    /// accounts below them.
    may_unseal: bool,
    unseal_username: String,
    /// The security administrator sets TOTP exemptions.
    may_exempt: bool,
    exempt_username: String,
    /// Typed values of the account form (kept on an error).
    new_username: String,
    new_display_name: String,
    new_role: String,
    new_org_code: String,
}

impl AccountPage {
    /// The account form's text inputs: name, label, typed value.
    fn text_fields(&self) -> Vec<(&'static str, &'static str, String, bool)> {
        vec![
            ("username", "用户名", self.new_username.clone(), true),
            ("display_name", "姓名", self.new_display_name.clone(), true),
            (
                "org_code",
                "学校标识码或行政区划代码",
                self.new_org_code.clone(),
                false,
            ),
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
            Some(e) if e.field.is_none() => e.message.clone(),
            _ => String::new(),
        }
    }
}

async fn account_page(s: &AppState, u: &WebUser) -> PageResult<AccountPage> {
    let layout = Layout::new(&s.app, u, "账号与登录", "/account").await;
    let policy = s.app.accounts();
    let totp_enabled = s
        .app
        .totp_enabled(&u.user)
        .await
        .map_err(|e| layout.fail(e))?;
    let totp_due = s
        .app
        .totp_enrolment_due(&u.user)
        .await
        .map_err(|e| layout.fail(e))?;
    let settings = if u.user.role == Role::SecurityAdmin {
        vec![
            Setting {
                name: "会话空闲超时",
                value: format!("{} 分钟", policy.session_idle.num_minutes()),
            },
            Setting {
                name: "会话最长有效期",
                value: format!("{} 小时", policy.session_absolute.num_hours()),
            },
            Setting {
                name: "同一地址15分钟内登录失败上限",
                value: format!("{} 次", policy.max_failures_per_address),
            },
            Setting {
                name: "密码有效期",
                value: policy
                    .password_max_age
                    .map(|d| format!("{} 天", d.num_days()))
                    .unwrap_or_else(|| "不限（未开启定期更换）".into()),
            },
            Setting {
                name: "动态口令（双因素）",
                value: match policy.totp_required {
                    TotpRequired::Authority => "主管部门、全国及三员账号必须使用".into(),
                    TotpRequired::All => "全部账号必须使用".into(),
                    TotpRequired::None => "不使用".into(),
                },
            },
            Setting {
                name: "动态口令密钥加密",
                value: if s.app.has_secret_key() {
                    "已配置运维密钥，密钥加密存储".into()
                } else {
                    format!(
                        "未配置（{} 或 {}），暂不能绑定动态口令",
                        secret_key::ENV_KEY,
                        secret_key::ENV_KEY_FILE
                    )
                },
            },
            Setting {
                name: "账号封存",
                value: format!("{} 天未使用", xueji_app::accounts::SEAL_AFTER.num_days()),
            },
        ]
    } else {
        vec![]
    };
    Ok(AccountPage {
        layout,
        username: u.user.username.clone(),
        done: None,
        error: None,
        totp_applies: policy.totp_applies(u.user.role),
        totp_enabled,
        totp_exempt: policy.totp_applies(u.user.role) && !totp_enabled && !totp_due,
        settings,
        may_create: u.user.role == Role::SystemAdmin,
        may_unseal: matches!(
            u.user.role,
            Role::SecurityAdmin | Role::AuthorityAdmin | Role::NationalAdmin
        ),
        unseal_username: String::new(),
        may_exempt: u.user.role == Role::SecurityAdmin,
        exempt_username: String::new(),
        new_username: String::new(),
        new_display_name: String::new(),
        new_role: "school_admin".into(),
        new_org_code: String::new(),
    })
}

pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<AccountPage> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let mut p = account_page(&s, &u).await?;
    p.done = match last_value(&pairs, "done").as_str() {
        "password" => Some("密码已修改，其他设备上的登录已退出".into()),
        "totp" => Some("动态口令已绑定，今后登录须输入验证码".into()),
        _ => None,
    };
    Ok(p)
}

#[derive(Template, WebTemplate)]
#[template(path = "account_totp.html")]
pub struct TotpPage {
    layout: Layout,
    username: String,
    /// Sent here by the gate: the role must use the second factor.
    forced: bool,
    applies: bool,
    enabled: bool,
    enrolment: Option<TotpEnrolment>,
    error: Option<Error>,
}

impl TotpPage {
    fn field_error(&self, field: &str) -> String {
        match &self.error {
            Some(e) if e.field == Some(field) => e.message.clone(),
            _ => String::new(),
        }
    }

    fn form_error(&self) -> String {
        match &self.error {
            Some(e) if e.field.is_none() => e.message.clone(),
            _ => String::new(),
        }
    }
}

async fn totp_view(s: &AppState, u: &WebUser) -> PageResult<TotpPage> {
    let layout = Layout::new(&s.app, u, "绑定动态口令", "/account").await;
    let enabled = s
        .app
        .totp_enabled(&u.user)
        .await
        .map_err(|e| layout.fail(e))?;
    let enrolment = s
        .app
        .totp_pending(&u.user)
        .await
        .map_err(|e| layout.fail(e))?;
    Ok(TotpPage {
        layout,
        username: u.user.username.clone(),
        forced: u.must_enrol_totp,
        applies: s.app.accounts().totp_applies(u.user.role),
        enabled,
        enrolment,
        error: None,
    })
}

/// 绑定动态口令: where every user who must enrol is sent before anything else.
pub async fn totp_page(State(s): State<AppState>, u: WebUser) -> PageResult<TotpPage> {
    totp_view(&s, &u).await
}

pub async fn totp_begin(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form_pairs(form);
    let mut p = totp_view(&s, &u).await?;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| p.layout.fail(e))?;
    match s.app.totp_begin(&u.user).await {
        Ok(e) => p.enrolment = Some(e),
        Err(e) => {
            let e = user_error(e);
            return Ok((
                super::status_of(&e),
                TotpPage {
                    error: Some(e),
                    ..p
                },
            )
                .into_response());
        }
    }
    Ok(p.into_response())
}

pub async fn totp_confirm(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form_pairs(form);
    let p = totp_view(&s, &u).await?;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| p.layout.fail(e))?;
    match s
        .app
        .totp_confirm(&u.user, &last_value(&pairs, "code"))
        .await
    {
        Ok(()) => Ok(Redirect::to("/account?done=totp").into_response()),
        Err(e) => {
            let e = user_error(e);
            Ok((
                super::status_of(&e),
                TotpPage {
                    error: Some(e),
                    ..p
                },
            )
                .into_response())
        }
    }
}

pub async fn logout_all(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form_pairs(form);
    let layout = Layout::new(&s.app, &u, "账号与登录", "/account").await;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| layout.fail(e))?;
    s.app
        .logout_everywhere(&u.user)
        .await
        .map_err(|e| layout.fail(e))?;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        super::auth::clear_cookie(SESSION_COOKIE),
    );
    Ok(res)
}

pub async fn create(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<AccountPage> {
    let pairs = form_pairs(form);
    let mut p = account_page(&s, &u).await?;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| p.layout.fail(e))?;
    let a = NewAccount {
        username: last_value(&pairs, "username"),
        display_name: last_value(&pairs, "display_name"),
        role: last_value(&pairs, "role"),
        org_code: Some(last_value(&pairs, "org_code")).filter(|c| !c.is_empty()),
        initial_password: last_value(&pairs, "initial_password"),
    };
    p.new_username = a.username.clone();
    p.new_display_name = a.display_name.clone();
    p.new_role = a.role.clone();
    p.new_org_code = a.org_code.clone().unwrap_or_default();
    match s.app.create_account(&u.user, a).await {
        Ok(acc) => {
            p.done = Some(format!(
                "账号 {} 已创建，用户首次登录须修改初始密码",
                acc.username
            ));
            p.new_username.clear();
            p.new_display_name.clear();
            p.new_org_code.clear();
        }
        Err(e) => p.error = Some(user_error(e)),
    }
    Ok(p)
}

/// 解封: unseals an account sealed after six months unused.
pub async fn unseal(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<AccountPage> {
    let pairs = form_pairs(form);
    let mut p = account_page(&s, &u).await?;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| p.layout.fail(e))?;
    let username = last_value(&pairs, "username");
    match s.app.unseal_account(&u.user, &username).await {
        Ok(()) => p.done = Some(format!("账号 {} 已解封", username.trim())),
        Err(e) => {
            // Shown beside the field.
            let mut e = user_error(e);
            e.field = Some("unseal_username");
            p.error = Some(e);
            p.unseal_username = username;
        }
    }
    Ok(p)
}

/// 动态口令豁免: the security administrator exempts an account from the required second factor
/// or ends its exemption.
pub async fn totp_exempt(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<AccountPage> {
    let pairs = form_pairs(form);
    let mut p = account_page(&s, &u).await?;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| p.layout.fail(e))?;
    let username = last_value(&pairs, "username");
    let exempt = last_value(&pairs, "exempt") == "true";
    match s.app.set_totp_exempt(&u.user, &username, exempt).await {
        Ok(()) => {
            p.done = Some(if exempt {
                format!("账号 {} 已豁免动态口令", username.trim())
            } else {
                format!("账号 {} 已取消豁免，须绑定动态口令", username.trim())
            })
        }
        Err(e) => {
            let mut e = user_error(e);
            e.field = Some("exempt_username");
            p.error = Some(e);
            p.exempt_username = username;
        }
    }
    Ok(p)
}

#[derive(Template, WebTemplate)]
#[template(path = "account_password.html")]
pub struct PasswordPage {
    layout: Layout,
    forced: bool,
    error: Option<Error>,
}

impl PasswordPage {
    fn field_error(&self, field: &str) -> String {
        match &self.error {
            Some(e) if e.field == Some(field) => e.message.clone(),
            _ => String::new(),
        }
    }

    fn form_error(&self) -> String {
        match &self.error {
            Some(e) if e.field.is_none() => e.message.clone(),
            _ => String::new(),
        }
    }
}

pub async fn password_form(State(s): State<AppState>, u: WebUser) -> PasswordPage {
    PasswordPage {
        layout: Layout::new(&s.app, &u, "修改密码", PASSWORD_PAGE).await,
        forced: u.user.must_change_password,
        error: None,
    }
}

pub async fn password_submit(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<axum::Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form_pairs(form);
    let layout = Layout::new(&s.app, &u, "修改密码", PASSWORD_PAGE).await;
    check_csrf(&u, &last_value(&pairs, "_csrf")).map_err(|e| layout.fail(e))?;
    let (old, new) = (last_value(&pairs, "old"), last_value(&pairs, "new"));
    let result = if new != last_value(&pairs, "confirm") {
        Err(Error::validation("confirm", "两次输入的新密码不一致"))
    } else {
        s.app
            .change_password(&u.user, &old, &new, Some(&u.token))
            .await
            .map_err(user_error)
    };
    match result {
        Ok(()) => Ok(Redirect::to("/account?done=password").into_response()),
        Err(e) => {
            let status = super::status_of(&e);
            Ok((
                status,
                PasswordPage {
                    layout,
                    forced: u.user.must_change_password,
                    error: Some(e),
                },
            )
                .into_response())
        }
    }
}

pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub org: String,
    pub action: String,
    pub entity: String,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    layout: Layout,
    rows: Vec<AuditRow>,
    pager: Pager,
    action: String,
    actor: String,
}

pub async fn audit(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<AuditPage> {
    let layout = Layout::new(&s.app, &u, "操作日志", "/audit").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let page = parse_page(&last_value(&pairs, "page"), "").map_err(|e| layout.fail(e))?;
    let (action, actor) = (last_value(&pairs, "action"), last_value(&pairs, "actor"));
    let filter = AuditFilter {
        action: Some(action.clone()),
        actor: Some(actor.clone()),
        ..AuditFilter::default()
    };
    let list = s
        .app
        .audit_entries(&u.user, &filter, page)
        .await
        .map_err(|e| layout.fail(e))?;
    let keep = [("action", action.as_str()), ("actor", actor.as_str())];
    let pager = Pager::new("/audit", &keep, page.page, page.per_page, list.total);
    let rows = list
        .items
        .into_iter()
        .map(|r| AuditRow {
            seq: r.seq,
            at: fmt_time(&r.at),
            actor: r.actor_name,
            org: r.actor_org,
            action: r.action,
            entity: format!("{} {}", r.entity_type, r.entity_id),
            detail: r.after_json.unwrap_or_default(),
        })
        .collect();
    Ok(AuditPage {
        layout,
        rows,
        pager,
        action,
        actor,
    })
}
