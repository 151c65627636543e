//! The Chinese web UI (server-rendered; works without JavaScript).
//!
//! Every page but the login form is drawn inside the same frame (`base.html`): the header bar
//! with the user, their organisation and role, the menu tree on the left, the page on the right.
//! Handlers build a [`Layout`] first, so that a refusal of the use case can still be shown inside
//! the frame ([`PageError`]).

mod account;
mod account_admin;
mod archive;
mod auth;
mod calendar;
mod changes;
mod dock;
mod home;
mod messages;
pub mod oversight;
mod problems;
mod records;
mod sanctions;
mod schools;
mod students;
mod transfer_apply;
mod transfer_detail;
mod transfers;

use std::sync::LazyLock;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, Utc};
use tower_http::set_header::SetResponseHeaderLayer;
use xueji_app::{App, AppError};
use xueji_domain::access::Role;
use xueji_domain::{Error, ErrorCode};

use crate::AppState;
use crate::session::WebUser;

pub const SYSTEM_NAME: &str = "全国中小学生学籍信息管理系统";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .merge(account::router())
        .merge(account_admin::router())
        .route("/", get(home::home))
        .route("/students", get(students::list))
        .route("/students/open", get(students::open))
        .route(
            "/students/register",
            get(records::register_form).post(records::register),
        )
        .route(
            "/students/import",
            get(records::import_form)
                .post(records::upload)
                .layer(DefaultBodyLimit::max(crate::MAX_BODY)),
        )
        .route("/students/import/template.xlsx", get(records::template))
        .route("/students/import/{job}", get(records::job))
        .route(
            "/students/import/{job}/progress.json",
            get(records::progress),
        )
        .route("/students/import/{job}/commit", post(records::commit))
        .route(
            "/students/import/{job}/report.xlsx",
            get(records::report_xlsx),
        )
        .route("/students/{student_no}", get(students::detail))
        .route("/students/{student_no}/card", get(archive::card))
        .route(
            "/students/{student_no}/sanctions",
            get(sanctions::page).post(sanctions::record),
        )
        .route(
            "/students/{student_no}/sanctions/{id}/revoke",
            post(sanctions::revoke),
        )
        .route("/problems", get(problems::list))
        .route("/problems/{id}", get(problems::detail))
        .route(
            "/problems/{id}/action",
            post(problems::act).layer(DefaultBodyLimit::max(crate::MAX_BODY)),
        )
        .route("/problems/{id}/decision", post(problems::decide))
        .route("/problems/{id}/evidence/{eid}", get(problems::evidence))
        .route(
            "/promotion",
            get(problems::promotion).post(problems::run_promotion),
        )
        .route("/schools", get(schools::list))
        .route("/schools/{code}", get(schools::detail))
        .route(
            "/transfers/apply",
            get(transfer_apply::form)
                .post(transfer_apply::submit)
                // Up to five evidence files of 2 MB each (the whole body is capped by `MAX_BODY`).
                .layer(DefaultBodyLimit::max(crate::MAX_BODY)),
        )
        .route("/transfers", get(transfers::query))
        .route("/transfers/export.xlsx", get(transfers::export))
        .route(
            "/transfers/review",
            get(transfers::review_list).post(transfers::review_batch),
        )
        .route(
            "/transfers/pull",
            get(transfers::pull_list).post(transfers::pull_batch),
        )
        .route("/transfers/open", post(transfers::open))
        .route("/transfers/{id}", get(transfer_detail::detail))
        .route("/transfers/{id}/review", post(transfer_detail::review))
        .route("/transfers/{id}/withdraw", post(transfer_detail::withdraw))
        .route("/transfers/{id}/pull", post(transfer_detail::pull))
        .route("/transfers/{id}/paper", post(transfer_detail::paper))
        .route(
            "/transfers/{id}/evidence/{eid}",
            get(transfer_detail::evidence),
        )
        .route("/transfers/{id}/notice", get(transfer_detail::notice))
        .route("/changes", get(changes::list))
        .route(
            "/students/{student_no}/changes/new",
            get(changes::new_form)
                .post(changes::submit)
                // Evidence files of 2 MB each (the whole body is capped by `MAX_BODY`).
                .layer(DefaultBodyLimit::max(crate::MAX_BODY)),
        )
        .route("/changes/{id}", get(changes::detail))
        .route("/changes/{id}/review", post(changes::review))
        .route("/changes/{id}/withdraw", post(changes::withdraw))
        .route("/changes/{id}/evidence/{eid}", get(changes::evidence))
        .route("/messages", get(messages::list))
        .route("/messages/read", post(messages::mark_read))
        .route("/calendar", get(calendar::page).post(calendar::submit))
        .route("/dock", get(dock::page))
        .route("/node", get(dock::node_page))
        .route("/node/{id}", post(dock::node_act))
        .merge(oversight::router())
        // Pages hold personal data: never kept by a browser or proxy cache.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .route("/static/app.css", get(stylesheet))
        .route("/static/import.js", get(records::script))
}

// ---------------------------------------------------------------------------------------------
// The stylesheet: embedded, cached for a year, its URL versioned by a hash of its content.

const CSS: &str = include_str!("../../static/app.css");

const fn fnv1a(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

static CSS_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/static/app.css?v={:016x}", fnv1a(CSS)));

pub(crate) fn css_href() -> &'static str {
    CSS_HREF.as_str()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        CSS,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// The frame: header bar and menu tree.

/// One leaf of the menu tree.
#[derive(Debug, Clone)]
pub struct MenuItem {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// A folder of the menu tree (跨省转学, 省内转学 …); `title` is `None` for items shown directly
/// under their section.
#[derive(Debug, Clone)]
pub struct MenuGroup {
    pub title: Option<&'static str>,
    pub items: Vec<MenuItem>,
}

/// A top-level entry: either a link (`href`) or a heading over groups.
#[derive(Debug, Clone)]
pub struct MenuSection {
    pub title: &'static str,
    pub href: Option<String>,
    pub current: bool,
    pub groups: Vec<MenuGroup>,
}

fn item(label: &'static str, href: impl Into<String>) -> MenuItem {
    MenuItem {
        label,
        href: href.into(),
        current: false,
    }
}

/// The menu tree a role sees.
fn menu_for(role: Role) -> Vec<MenuSection> {
    if role.is_separated_admin() {
        return account::separated_menu(role);
    }
    let reviews = matches!(role, Role::SchoolReviewer | Role::AuthorityAdmin);
    let authority = matches!(role, Role::AuthorityAdmin | Role::NationalAdmin);
    let mut transfers = Vec::new();
    for (title, kind, [apply, review, pull, query]) in [
        (
            "跨省转学",
            "cross_province",
            [
                "跨省转学申请",
                "跨省转学审核",
                "跨省转学调档",
                "跨省转学查询",
            ],
        ),
        (
            "省内转学",
            "intra_province",
            [
                "省内转学申请",
                "省内转学审核",
                "省内转学调档",
                "省内转学查询",
            ],
        ),
    ] {
        let mut items = Vec::new();
        if role == Role::SchoolAdmin {
            items.push(item(apply, format!("/transfers/apply?kind={kind}")));
        }
        if reviews {
            items.push(item(review, format!("/transfers/review?kind={kind}")));
        }
        if role.is_school() {
            items.push(item(pull, format!("/transfers/pull?kind={kind}")));
        }
        items.push(item(query, format!("/transfers?kind={kind}")));
        transfers.push(MenuGroup {
            title: Some(title),
            items,
        });
    }
    // 学籍异动 and 关键数据变更: filed from a student's page, reviewed from this list.
    transfers.push(MenuGroup {
        title: None,
        items: vec![item("学籍异动", "/changes")],
    });
    let mut menu = vec![
        MenuSection {
            title: "工作台",
            href: Some("/".into()),
            current: false,
            groups: vec![],
        },
        MenuSection {
            title: "学籍管理",
            href: None,
            current: false,
            groups: transfers,
        },
        MenuSection {
            title: "学生管理",
            href: None,
            current: false,
            groups: vec![MenuGroup {
                title: None,
                items: student_items(role),
            }],
        },
    ];
    if authority {
        menu.push(MenuSection {
            title: "学校管理",
            href: None,
            current: false,
            groups: vec![MenuGroup {
                title: None,
                items: vec![item("学校列表", "/schools")],
            }],
        });
        menu.push(MenuSection {
            title: "督办",
            href: None,
            current: false,
            groups: vec![MenuGroup {
                title: None,
                items: vec![
                    item("逾期督办", "/oversight"),
                    item("超期案件", "/oversight/stale"),
                ],
            }],
        });
        menu.push(MenuSection {
            title: "统计",
            href: None,
            current: false,
            groups: vec![MenuGroup {
                title: None,
                items: vec![item("转学统计", "/statistics")],
            }],
        });
    }
    menu.push(MenuSection {
        title: "消息",
        href: Some("/messages".into()),
        current: false,
        groups: vec![],
    });
    menu.push(account::menu_section());
    if authority {
        // The national administrator maintains the holiday calendar; authorities read it.
        menu.push(MenuSection {
            title: "系统管理",
            href: None,
            current: false,
            groups: vec![MenuGroup {
                title: None,
                items: vec![item("转学政策", "/policy"), item("节假日安排", "/calendar")],
            }],
        });
    }
    if role == Role::NationalAdmin
        && let Some(admin) = menu.last_mut().filter(|s| s.title == "系统管理")
    {
        admin.groups[0].items.push(item("对接管理", "/dock"));
    }
    menu
}

/// 学生管理: the list for everyone; registration and import for a school's administrator;
/// 问题学籍 for the school's staff and the authorities; 升级毕业 for the authorities.
fn student_items(role: Role) -> Vec<MenuItem> {
    let mut items = vec![item("学生名单", "/students")];
    if role == Role::SchoolAdmin {
        items.push(item("学籍注册", "/students/register"));
        items.push(item("批量导入", "/students/import"));
    }
    items.push(item("问题学籍", "/problems"));
    if matches!(role, Role::AuthorityAdmin | Role::NationalAdmin) {
        items.push(item("升级毕业", "/promotion"));
    }
    items
}

/// Marks the entry whose link is `current` and returns the breadcrumb leading to it.
fn mark_current(menu: &mut [MenuSection], current: &str) -> Vec<&'static str> {
    for s in menu.iter_mut() {
        if s.href.as_deref() == Some(current) {
            s.current = true;
            return vec![s.title];
        }
        for g in s.groups.iter_mut() {
            for i in g.items.iter_mut() {
                if i.href == current {
                    i.current = true;
                    let mut crumbs = vec![s.title];
                    crumbs.extend(g.title);
                    crumbs.push(i.label);
                    return crumbs;
                }
            }
        }
    }
    vec![]
}

/// What the frame shows around every signed-in page.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The page's own title (the `<title>` adds the system name).
    pub title: String,
    pub display_name: String,
    pub org_name: String,
    pub role_label: &'static str,
    /// The session's CSRF token, for the logout form and every POST form of the page.
    pub csrf: String,
    pub menu: Vec<MenuSection>,
    /// 当前位置: the menu path of the page, then the page's own title when it is deeper.
    pub crumbs: Vec<String>,
    pub css_href: &'static str,
    /// Unread messages of the user's organisation, shown beside 消息 in the header.
    pub unread: i64,
}

impl Layout {
    /// The frame of a page for `u`; `current` is the menu link to mark (e.g. `/students`).
    /// Reads the organisation's unread message count for the header (a failure to read it only
    /// hides the count).
    pub async fn new(app: &App, u: &WebUser, title: impl Into<String>, current: &str) -> Self {
        let unread = match app.unread_count(&u.user).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not count unread messages");
                0
            }
        };
        let title = title.into();
        let mut menu = menu_for(u.user.role);
        let mut crumbs: Vec<String> = mark_current(&mut menu, current)
            .into_iter()
            .map(str::to_string)
            .collect();
        if crumbs.last() != Some(&title) {
            crumbs.push(title.clone());
        }
        Layout {
            title,
            display_name: u.user.display_name.clone(),
            org_name: u.user.org_name.clone(),
            role_label: u.user.role.label_zh(),
            csrf: u.csrf.clone(),
            menu,
            crumbs,
            css_href: css_href(),
            unread,
        }
    }

    /// Replaces the page's own title (the last crumb too).
    pub fn retitle(&mut self, title: impl Into<String>) {
        let title = title.into();
        if self.crumbs.last() == Some(&self.title) {
            self.crumbs.pop();
        }
        if self.crumbs.last() != Some(&title) {
            self.crumbs.push(title.clone());
        }
        self.title = title;
    }

    /// A refusal shown inside this frame.
    pub fn fail(&self, e: impl Into<PageFailure>) -> PageError {
        PageError {
            layout: Some(self.clone()),
            error: e.into().0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors as pages.

/// Anything a page can fail with, reduced to the user-facing domain error (storage details go to
/// the log only).
pub struct PageFailure(pub Error);

impl From<Error> for PageFailure {
    fn from(e: Error) -> Self {
        PageFailure(e)
    }
}

impl From<AppError> for PageFailure {
    fn from(e: AppError) -> Self {
        PageFailure(user_error(e))
    }
}

impl From<ErrorCode> for PageFailure {
    fn from(code: ErrorCode) -> Self {
        PageFailure(Error::new(code, code.title()))
    }
}

/// The error the user sees; a storage failure is logged and becomes `internal`.
pub fn user_error(e: AppError) -> Error {
    if !matches!(e, AppError::Domain(_)) {
        tracing::error!(error = %e, "page request failed");
    }
    e.to_domain()
}

/// A Chinese error page with the status of the error's code; inside the frame when the user is
/// known.
pub struct PageError {
    pub layout: Option<Layout>,
    pub error: Error,
}

impl PageError {
    /// An error page outside the frame (no session).
    pub fn bare(e: impl Into<PageFailure>) -> Self {
        PageError {
            layout: None,
            error: e.into().0,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: &'static str,
    message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "error_bare.html")]
struct BareErrorPage {
    css_href: &'static str,
    heading: &'static str,
    message: String,
}

pub fn status_of(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = status_of(&self.error);
        let heading = self.error.code.title();
        let message = self.error.message;
        match self.layout {
            Some(mut layout) => {
                layout.title = heading.to_string();
                if let Some(last) = layout.crumbs.last_mut() {
                    *last = heading.to_string();
                }
                (
                    status,
                    ErrorPage {
                        layout,
                        heading,
                        message,
                    },
                )
                    .into_response()
            }
            None => (
                status,
                BareErrorPage {
                    css_href: css_href(),
                    heading,
                    message,
                },
            )
                .into_response(),
        }
    }
}

pub type PageResult<T> = Result<T, PageError>;

// ---------------------------------------------------------------------------------------------
// Small helpers shared by the pages.

/// Percent-encodes a query or path component (everything but RFC 3986 unreserved characters).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from its non-empty pairs, `?a=1&b=2`, or the empty string.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// China Standard Time, as users read every time.
fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.with_timezone(&cst()).format("%Y-%m-%d %H:%M").to_string()
}

pub fn fmt_date(t: &DateTime<Utc>) -> String {
    t.with_timezone(&cst()).format("%Y-%m-%d").to_string()
}

/// The last value of each query key (a repeated key must not turn into a 400).
pub fn last_value(pairs: &[(String, String)], key: &str) -> String {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// Pagination of a list: 共 N 条, 第 x/y 页, 上一页 / 下一页 keeping the filters.
#[derive(Debug, Clone)]
pub struct Pager {
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
}

impl Pager {
    /// `base` is the path, `filters` the query pairs to keep besides `page`.
    pub fn new(base: &str, filters: &[(&str, &str)], page: i64, per_page: i64, total: i64) -> Self {
        let pages = ((total + per_page - 1) / per_page).max(1);
        let href = |p: i64| {
            let p = p.to_string();
            let mut pairs = filters.to_vec();
            pairs.push(("page", p.as_str()));
            format!("{base}{}", query_string(&pairs))
        };
        Pager {
            total,
            page,
            pages,
            prev_href: (page > 1).then(|| href((page - 1).min(pages))),
            next_href: (page < pages).then(|| href(page + 1)),
        }
    }
}

/// Reads `page` / `per_page` from query text; a malformed number is a validation error.
pub fn parse_page(page: &str, per_page: &str) -> Result<xueji_app::paging::Page, Error> {
    let num = |s: &str, field: &'static str, msg: &str| -> Result<Option<i64>, Error> {
        if s.is_empty() {
            Ok(None)
        } else {
            s.parse::<i64>()
                .map(Some)
                .map_err(|_| Error::validation(field, msg))
        }
    };
    let page = num(page, "page", "页码应为正整数")?;
    let per_page = num(per_page, "per_page", "每页条数应在1到500之间")?;
    xueji_app::paging::Page::from_query(xueji_app::paging::PageQuery { page, per_page })
}

/// 男 / 女 from the API's gender word.
pub fn gender_label(g: &str) -> &'static str {
    match g {
        "male" => "男",
        "female" => "女",
        _ => "未知",
    }
}

/// The label of a grade code, or the code itself when unknown.
pub fn grade_label(code: &str) -> String {
    xueji_domain::ids::Grade::parse(code)
        .map(|g| g.label_zh().to_string())
        .unwrap_or_else(|_| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_follows_roles() {
        let labels = |r: Role| -> Vec<&'static str> {
            menu_for(r)
                .into_iter()
                .flat_map(|s| s.groups)
                .flat_map(|g| g.items)
                .map(|i| i.label)
                .collect()
        };
        let admin = labels(Role::SchoolAdmin);
        assert!(admin.contains(&"跨省转学申请") && admin.contains(&"省内转学调档"));
        assert!(!admin.contains(&"跨省转学审核") && !admin.contains(&"学校列表"));
        let reviewer = labels(Role::SchoolReviewer);
        assert!(reviewer.contains(&"跨省转学审核") && !reviewer.contains(&"跨省转学申请"));
        let authority = labels(Role::AuthorityAdmin);
        assert!(authority.contains(&"省内转学审核") && authority.contains(&"学校列表"));
        assert!(!authority.contains(&"跨省转学调档"));
        let national = labels(Role::NationalAdmin);
        assert!(national.contains(&"跨省转学查询") && national.contains(&"学校列表"));
    }

    #[test]
    fn current_item_is_marked_with_its_path() {
        let mut menu = menu_for(Role::SchoolAdmin);
        let crumbs = mark_current(&mut menu, "/transfers/pull?kind=intra_province");
        assert_eq!(crumbs, vec!["学籍管理", "省内转学", "省内转学调档"]);
    }

    #[test]
    fn system_menu_is_for_the_national_level_and_authorities() {
        let has_calendar = |r: Role| {
            menu_for(r).iter().any(|s| {
                s.groups
                    .iter()
                    .any(|g| g.items.iter().any(|i| i.href == "/calendar"))
            })
        };
        assert!(has_calendar(Role::NationalAdmin) && has_calendar(Role::AuthorityAdmin));
        assert!(!has_calendar(Role::SchoolAdmin) && !has_calendar(Role::SchoolReviewer));
    }

    #[test]
    fn retitling_replaces_the_page_crumb_without_doubling_the_menu_item() {
        let mut menu = menu_for(Role::SchoolAdmin);
        let crumbs: Vec<String> = mark_current(&mut menu, "/transfers/apply?kind=cross_province")
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut layout = Layout {
            title: "转学申请".into(),
            display_name: String::new(),
            org_name: String::new(),
            role_label: "",
            csrf: String::new(),
            menu,
            crumbs,
            css_href: "",
            unread: 0,
        };
        layout.crumbs.push("转学申请".into());
        layout.retitle("跨省转学申请");
        assert_eq!(layout.crumbs, vec!["学籍管理", "跨省转学", "跨省转学申请"]);
        // A page deeper than its menu item keeps the item and adds its own title.
        layout.title = "转学明细".into();
        layout.crumbs.push("转学明细".into());
        layout.retitle("转学明细（张三）");
        assert_eq!(
            layout.crumbs,
            vec!["学籍管理", "跨省转学", "跨省转学申请", "转学明细（张三）"]
        );
    }

    #[test]
    fn query_strings_are_encoded_and_skip_empty_values() {
        assert_eq!(
            query_string(&[("q", "张 三&"), ("grade", ""), ("page", "2")]),
            "?q=%E5%BC%A0%20%E4%B8%89%26&page=2"
        );
        assert_eq!(query_string(&[("q", "")]), "");
    }

    #[test]
    fn pager_counts_pages() {
        let p = Pager::new("/students", &[("grade", "11")], 1, 50, 101);
        assert_eq!(p.pages, 3);
        assert!(p.prev_href.is_none());
        assert_eq!(p.next_href.as_deref(), Some("/students?grade=11&page=2"));
        let empty = Pager::new("/students", &[], 1, 50, 0);
        assert_eq!(empty.pages, 1);
        assert!(empty.next_href.is_none());
    }

    #[test]
    fn bad_page_numbers_are_validation_errors() {
        assert_eq!(parse_page("x", "").unwrap_err().field, Some("page"));
        assert_eq!(parse_page("0", "").unwrap_err().field, Some("page"));
        assert_eq!(parse_page("", "900").unwrap_err().field, Some("per_page"));
        assert_eq!(parse_page("", "").unwrap().per_page, 50);
    }
}
