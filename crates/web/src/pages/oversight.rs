//! 督办, 统计, 转学政策 and 家长查询 (issue 4):
//!
//! - `GET /oversight?region=…` — 逾期督办: the dashboard of the caller's region with drill-down;
//! - `GET /oversight/stale?days=…`, `POST /oversight/stale/{id}/close` — 超期案件;
//! - `GET/POST /policy` — 转学政策 of a province ([`policy`]);
//! - `GET /statistics`, `/statistics/export.xlsx` — 转学统计 ([`statistics`]);
//! - `GET/POST /query` — 家长查询, public, outside the frame ([`parent`]).

mod chart;
mod parent;
mod policy;
mod statistics;

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use xueji_app::App;
use xueji_app::oversight::{Counts, Dashboard};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{RegionCode, RegionLevel};
use xueji_domain::{Error, ErrorCode};

use super::{
    Layout, PageResult, fmt_date, last_value, query_string, status_of, url_encode, user_error,
};
use crate::AppState;
use crate::session::WebUser;

type Pairs = Vec<(String, String)>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oversight", get(dashboard))
        .route("/oversight/stale", get(stale))
        .route("/oversight/stale/{id}/close", post(close))
        .route("/policy", get(policy::page).post(policy::submit))
        .route("/statistics", get(statistics::page))
        .route("/statistics/export.xlsx", get(statistics::export))
        .route("/query", get(parent::form).post(parent::submit))
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

/// A `<select>` option.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Opt {
    fn new(value: impl Into<String>, label: impl Into<String>, current: &str) -> Self {
        let value = value.into();
        Opt {
            selected: value == current,
            value,
            label: label.into(),
        }
    }
}

use crate::session::check_csrf;

/// Region names, read once per page.
struct Names<'a> {
    app: &'a App,
    cache: HashMap<String, String>,
}

impl<'a> Names<'a> {
    fn new(app: &'a App) -> Self {
        Names {
            app,
            cache: HashMap::new(),
        }
    }

    async fn of(&mut self, code: &str) -> String {
        if let Some(n) = self.cache.get(code) {
            return n.clone();
        }
        let name = match self.app.region(code).await {
            Ok(Some(r)) => r.name,
            Ok(None) => code.to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read a region name");
                code.to_string()
            }
        };
        self.cache.insert(code.to_string(), name.clone());
        name
    }
}

/// One step of the region breadcrumb (全国 › 河南省 › 郑州市 …).
pub struct Crumb {
    pub label: String,
    /// `None` for the region shown.
    pub href: Option<String>,
}

/// The regions from the caller's own (`own`: `None` = the nation) down to `shown`, each a link
/// to `base` with `region=` and the other `keep` pairs.
async fn region_crumbs(
    names: &mut Names<'_>,
    own: Option<&str>,
    shown: Option<&str>,
    base: &str,
    keep: &[(&str, &str)],
) -> Vec<Crumb> {
    let href = |code: Option<&str>| {
        let mut pairs: Vec<(&str, &str)> = keep.to_vec();
        // The caller's own region is the page's default: no `region=`.
        if let Some(c) = code.filter(|c| Some(*c) != own) {
            pairs.push(("region", c));
        }
        format!("{base}{}", query_string(&pairs))
    };
    let mut chain: Vec<String> = vec![];
    if let Some(s) = shown.and_then(|s| RegionCode::parse(s).ok()) {
        let mut codes = vec![s.province().as_str().to_string()];
        if s.level() != RegionLevel::Province {
            codes.push(s.city().as_str().to_string());
        }
        if s.level() == RegionLevel::County {
            codes.push(s.as_str().to_string());
        }
        for c in codes {
            // Only the caller's own region and those below it.
            let at_or_below = match own {
                None => true,
                Some(o) => RegionCode::parse(o).is_ok_and(|o| o.contains(&c)),
            };
            if at_or_below && !chain.contains(&c) {
                chain.push(c);
            }
        }
    }
    let mut out = vec![];
    if own.is_none() {
        out.push(Crumb {
            label: "全国".into(),
            href: Some(href(None)),
        });
    }
    for c in &chain {
        out.push(Crumb {
            label: names.of(c).await,
            href: Some(href(Some(c))),
        });
    }
    if let Some(last) = out.last_mut() {
        last.href = None;
    }
    out
}

/// The region a drill-down may show: the code as typed, checked for shape only (the use case
/// checks that it lies in the caller's region).
fn parse_region(s: &str) -> Result<Option<String>, Error> {
    if s.is_empty() {
        Ok(None)
    } else {
        RegionCode::parse(s)
            .map(|r| Some(r.as_str().to_string()))
            .map_err(|e| e.at("region"))
    }
}

// ---------------------------------------------------------------------------------------------
// 逾期督办

/// One card: 待办 / 即将到期 / 已逾期 / 最长逾期.
pub struct Card {
    pub title: String,
    pub counts: Counts,
}

pub struct CountRow {
    pub code: String,
    pub name: String,
    /// Drill-down link (subordinate regions) or the school's page.
    pub href: Option<String>,
    pub counts: Counts,
}

pub struct OverdueRow {
    pub href: String,
    pub student_name: String,
    pub party_name: String,
    pub step_label: String,
    pub due_date: String,
    pub overdue_days: i64,
    /// 已督办（郑州市教育局…） when escalated.
    pub escalated: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    layout: Layout,
    crumbs: Vec<Crumb>,
    region_name: String,
    cards: Vec<Card>,
    /// 下级地区 heading: 各地市, 各区县, 各省份; empty for a county (no table).
    region_heading: &'static str,
    regions: Vec<CountRow>,
    schools: Vec<CountRow>,
    /// Schools with steps waiting, when more than those listed.
    schools_cut: Option<i64>,
    overdue: Vec<OverdueRow>,
    /// The overdue list was cut at 100.
    overdue_cut: bool,
}

fn own_region(u: &WebUser) -> Option<String> {
    match &u.user.org {
        OrgRef::Authority(r) => Some(r.clone()),
        _ => None,
    }
}

async fn dashboard(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "逾期督办", "/oversight").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let region = parse_region(&last_value(&pairs, "region")).map_err(|e| layout.fail(e))?;
    let d: Dashboard = s
        .app
        .dashboard(&u.user, region.as_deref())
        .await
        .map_err(|e| layout.fail(e))?;
    let own = own_region(&u);
    let mut names = Names::new(&s.app);
    let crumbs = region_crumbs(
        &mut names,
        own.as_deref(),
        d.region.as_deref(),
        "/oversight",
        &[],
    )
    .await;
    let level = d
        .region
        .as_deref()
        .and_then(|r| RegionCode::parse(r).ok())
        .map(|r| r.level());
    let region_heading = match level {
        None => "各省份",
        Some(RegionLevel::Province) => "各地市",
        Some(RegionLevel::City) => "各区县",
        // A county has no subordinate authority: its schools are the drill-down.
        Some(RegionLevel::County) => "",
    };
    let own_title = match (&d.region, own.as_deref()) {
        (None, _) => "教育部（已督办到部的环节）".to_string(),
        (Some(r), Some(o)) if r == o => format!("本部门待办（{}）", u.user.org_name),
        (Some(_), _) => format!("{}学籍主管部门待办", d.region_name),
    };
    let cards = vec![
        Card {
            title: format!("{}合计", d.region_name),
            counts: d.total.clone(),
        },
        Card {
            title: own_title,
            counts: d.own.clone(),
        },
    ];
    let regions = d
        .by_region
        .iter()
        .map(|r| CountRow {
            href: (Some(&r.code) != d.region.as_ref())
                .then(|| format!("/oversight?region={}", url_encode(&r.code))),
            code: r.code.clone(),
            name: r.name.clone(),
            counts: r.counts.clone(),
        })
        .collect();
    let schools = d
        .by_school
        .iter()
        .map(|r| CountRow {
            href: Some(format!("/schools/{}", url_encode(&r.code))),
            code: r.code.clone(),
            name: r.name.clone(),
            counts: r.counts.clone(),
        })
        .collect();
    let mut overdue = vec![];
    for o in &d.overdue {
        let escalated = match &o.escalated_to {
            Some(code) => format!("已督办（{}学籍主管部门）", names.of(code).await),
            None => String::new(),
        };
        overdue.push(OverdueRow {
            href: format!("/transfers/{}", o.transfer_id),
            student_name: o.student_name.clone(),
            party_name: o.party_name.clone(),
            step_label: o.step_label.clone(),
            due_date: o.due_date.format("%Y-%m-%d").to_string(),
            overdue_days: o.overdue_days,
            escalated,
        });
    }
    let page = DashboardPage {
        layout,
        crumbs,
        region_name: d.region_name.clone(),
        cards,
        region_heading,
        regions,
        schools_cut: (d.schools_waiting > d.by_school.len() as i64).then_some(d.schools_waiting),
        schools,
        overdue_cut: overdue.len() >= 100 && d.total.overdue > 100,
        overdue,
    };
    Ok(page.into_response())
}

// ---------------------------------------------------------------------------------------------
// 超期案件

pub struct StaleRow {
    pub id: i64,
    pub href: String,
    pub student_name: String,
    pub kind: &'static str,
    pub status: String,
    pub from_school: String,
    pub to_school: String,
    pub filed: String,
    pub open_days: i64,
    /// The reason typed for this row when closing it failed.
    pub reason: String,
    pub error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "stale.html")]
pub struct StalePage {
    layout: Layout,
    /// The period as typed (kept when it is wrong).
    days: String,
    /// The period listed.
    days_value: i64,
    days_error: String,
    rows: Vec<StaleRow>,
    can_close: bool,
    done: String,
    /// Closing a case no longer in the list failed.
    error: String,
}

const DEFAULT_STALE_DAYS: i64 = 183;

fn parse_days(s: &str) -> Result<i64, Error> {
    if s.is_empty() {
        return Ok(DEFAULT_STALE_DAYS);
    }
    s.parse::<i64>()
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .ok_or_else(|| Error::validation("days", "天数应为1至3650之间的整数"))
}

/// Provincial authorities and the national administrator close stale cases.
fn may_close(u: &WebUser) -> bool {
    match (&u.user.org, u.user.role) {
        (_, Role::NationalAdmin) => true,
        (OrgRef::Authority(r), Role::AuthorityAdmin) => r.ends_with("0000"),
        _ => false,
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "cross_province" => "跨省转学",
        "intra_province" => "省内转学",
        _ => "转学",
    }
}

/// Renders the list; `failed` is the row whose closing failed (its id, reason typed, message).
async fn render_stale(
    s: &AppState,
    u: &WebUser,
    days_s: &str,
    done: String,
    failed: Option<(i64, String, Error)>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "超期案件", "/oversight/stale").await;
    let (days, days_error) = match parse_days(days_s) {
        Ok(d) => (d, String::new()),
        Err(e) => (DEFAULT_STALE_DAYS, e.message),
    };
    let items = s
        .app
        .stale_transfers(&u.user, Some(days))
        .await
        .map_err(|e| layout.fail(e))?;
    let mut status = if days_error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    // The message sits beside the row's close form; without forms it goes above the list.
    let can_close = may_close(u);
    let mut failed = failed;
    let rows: Vec<StaleRow> = items
        .into_iter()
        .map(|i| {
            let (reason, error) =
                match failed.take_if(|(id, _, _)| can_close && *id == i.transfer_id) {
                    Some((_, reason, e)) => {
                        status = status_of(&e);
                        (reason, e.message)
                    }
                    None => (String::new(), String::new()),
                };
            StaleRow {
                id: i.transfer_id,
                href: format!("/transfers/{}", i.transfer_id),
                student_name: i.student_name,
                kind: kind_label(&i.kind),
                status: i.status_label,
                from_school: i.from_school_name,
                to_school: i.to_school_name,
                filed: fmt_date(&i.created_at),
                open_days: i.open_days,
                reason,
                error,
            }
        })
        .collect();
    // A case no longer listed (closed meanwhile, or the days changed): the message still shows.
    let error = match failed {
        Some((id, _, e)) => {
            status = status_of(&e);
            format!("转学申请（编号 {id}）未能关闭：{}", e.message)
        }
        None => String::new(),
    };
    let page = StalePage {
        layout,
        days: if days_error.is_empty() {
            days.to_string()
        } else {
            days_s.to_string()
        },
        days_value: days,
        days_error,
        rows,
        can_close,
        done,
        error,
    };
    Ok((status, page).into_response())
}

async fn stale(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let done = match last_value(&pairs, "closed").parse::<i64>() {
        Ok(id) => {
            format!("已关闭转学申请（编号 {id}），学生的在办业务已解除，双方学校已收到通知。")
        }
        Err(_) => String::new(),
    };
    render_stale(&s, &u, &last_value(&pairs, "days"), done, None).await
}

async fn close(
    State(s): State<AppState>,
    u: WebUser,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let v = |k: &str| last_value(&pairs, k);
    let Ok(Path(id)) = id else {
        let layout = Layout::new(&s.app, &u, "超期案件", "/oversight/stale").await;
        return Err(layout.fail(Error::not_found("该转学申请")));
    };
    if let Err(e) = check_csrf(&u, &v("_csrf")) {
        let layout = Layout::new(&s.app, &u, "超期案件", "/oversight/stale").await;
        return Err(layout.fail(e));
    }
    let days = v("days");
    let reason = v("reason");
    let result = if reason.chars().count() > 200 {
        Err(Error::validation("reason", "关闭理由不超过200字"))
    } else {
        s.app
            .close_transfer(&u.user, id, &reason)
            .await
            .map(|_| ())
            .map_err(user_error)
    };
    match result {
        Ok(()) => {
            let days = parse_days(&days).unwrap_or(DEFAULT_STALE_DAYS);
            let mut target = format!("/oversight/stale?closed={id}");
            if days != DEFAULT_STALE_DAYS {
                target.push_str(&format!("&days={days}"));
            }
            Ok(Redirect::to(&target).into_response())
        }
        Err(e) if e.code == ErrorCode::Internal => {
            let layout = Layout::new(&s.app, &u, "超期案件", "/oversight/stale").await;
            Err(layout.fail(e))
        }
        Err(e) => render_stale(&s, &u, &days, String::new(), Some((id, reason, e))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_days_are_bounded() {
        assert_eq!(parse_days("").unwrap(), 183);
        assert_eq!(parse_days("30").unwrap(), 30);
        assert_eq!(parse_days("0").unwrap_err().field, Some("days"));
        assert_eq!(parse_days("x").unwrap_err().field, Some("days"));
    }

    #[test]
    fn authorities_and_the_ministry_get_the_oversight_menus() {
        let hrefs = |r: Role| -> Vec<(&'static str, String)> {
            super::super::menu_for(r)
                .into_iter()
                .flat_map(|s| {
                    let t = s.title;
                    s.groups
                        .into_iter()
                        .flat_map(|g| g.items)
                        .map(move |i| (t, i.href))
                })
                .collect()
        };
        for r in [Role::AuthorityAdmin, Role::NationalAdmin] {
            let h = hrefs(r);
            for (section, href) in [
                ("督办", "/oversight"),
                ("督办", "/oversight/stale"),
                ("统计", "/statistics"),
                ("系统管理", "/policy"),
            ] {
                assert!(h.contains(&(section, href.to_string())), "{r:?} {href}");
            }
        }
        for r in [Role::SchoolAdmin, Role::SchoolReviewer] {
            assert!(
                !hrefs(r).iter().any(|(_, h)| h.starts_with("/oversight")
                    || h == "/statistics"
                    || h == "/policy")
            );
        }
    }

    #[test]
    fn regions_are_checked_for_shape() {
        assert_eq!(parse_region("").unwrap(), None);
        assert_eq!(parse_region("410100").unwrap().as_deref(), Some("410100"));
        assert_eq!(parse_region("41").unwrap_err().field, Some("region"));
    }
}
