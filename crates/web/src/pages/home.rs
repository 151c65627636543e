//! `GET /` — 工作台: greeting, organisation and jurisdiction, 待办事项 (the transfers waiting for
//! the user's organisation, with due dates and overdue marks), quick links.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use xueji_app::App;
use xueji_app::paging::Page;
use xueji_app::transfers::TransferFilter;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{RegionCode, RegionLevel};
use xueji_domain::transfer::TransferKind;

use super::transfers::{Row, row_of};
use super::{Layout, PageResult};
use crate::AppState;
use crate::session::WebUser;

pub struct QuickLink {
    pub label: &'static str,
    pub href: &'static str,
    pub note: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    layout: Layout,
    display_name: String,
    org_kind: &'static str,
    org_name: String,
    /// `学校标识码 4101050001`, `行政区划代码 410105`, or empty.
    org_code: String,
    jurisdiction: String,
    links: Vec<QuickLink>,
    must_change_password: bool,
    todo: WorkList,
}

/// 待办事项: the first rows of the organisation's work list and its counts.
pub struct WorkList {
    pub rows: Vec<Row>,
    pub total: i64,
    /// Per kind: 跨省转学 and 省内转学.
    pub kinds: Vec<KindCount>,
    /// 待审核 (reviewers) or 待办理 (administrators: 调档, 纸质档案).
    pub label: &'static str,
    /// The role has no work list (the national administrator).
    pub none: bool,
}

pub struct KindCount {
    pub label: &'static str,
    pub count: i64,
    pub overdue: i64,
    /// Where the kind's list is worked through.
    pub href: String,
    pub overdue_href: String,
}

/// Rows of the work list shown on the home page.
const TODO_ROWS: i64 = 10;

async fn work_list(app: &App, u: &WebUser) -> Result<WorkList, xueji_app::AppError> {
    let role = u.user.role;
    let (label, path) = match role {
        Role::SchoolReviewer | Role::AuthorityAdmin => ("待审核", "/transfers/review"),
        Role::SchoolAdmin => ("待办理", "/transfers/pull"),
        // The separated administrators never reach this page (the gate sends them to theirs).
        Role::NationalAdmin | Role::SystemAdmin | Role::SecurityAdmin | Role::AuditAdmin => {
            ("待办理", "/transfers")
        }
    };
    let none = role == Role::NationalAdmin || role.is_separated_admin();
    let mut list = WorkList {
        rows: vec![],
        total: 0,
        kinds: vec![],
        label,
        none,
    };
    if none {
        return Ok(list);
    }
    let todo = TransferFilter {
        todo: Some(true),
        ..Default::default()
    };
    let one = Page {
        page: 1,
        per_page: 1,
    };
    let p = app
        .transfers(
            &u.user,
            &todo,
            Page {
                page: 1,
                per_page: TODO_ROWS,
            },
        )
        .await?;
    list.total = p.total;
    list.rows = p.items.into_iter().map(|t| row_of(t, &[])).collect();
    for kind in [TransferKind::CrossProvince, TransferKind::IntraProvince] {
        let of_kind = TransferFilter {
            kind: Some(kind.as_str().to_string()),
            ..todo.clone()
        };
        let count = app.transfers(&u.user, &of_kind, one).await?.total;
        let overdue_filter = TransferFilter {
            overdue: Some(true),
            ..of_kind
        };
        let overdue = app.transfers(&u.user, &overdue_filter, one).await?.total;
        list.kinds.push(KindCount {
            label: kind.label_zh(),
            count,
            overdue,
            href: format!("{path}?kind={}", kind.as_str()),
            overdue_href: format!("/transfers?kind={}&overdue=1", kind.as_str()),
        });
    }
    if matches!(role, Role::SchoolReviewer | Role::AuthorityAdmin) {
        // 学籍异动 requests waiting for this organisation's decision (they have no deadline).
        let waiting = xueji_app::changes::ChangeFilter {
            todo: Some(true),
            ..Default::default()
        };
        list.kinds.push(KindCount {
            label: "学籍异动",
            count: app.changes(&u.user, &waiting, one).await?.total,
            overdue: 0,
            href: "/changes?view=todo".into(),
            overdue_href: String::new(),
        });
    }
    Ok(list)
}

/// The full name of a region: 河南省 郑州市 金水区 (codes the table lacks are left out).
pub async fn region_path(app: &App, code: &str) -> String {
    let Ok(rc) = RegionCode::parse(code) else {
        return code.to_string();
    };
    let mut codes = vec![rc.province().as_str().to_string()];
    if rc.level() != RegionLevel::Province {
        codes.push(rc.city().as_str().to_string());
    }
    codes.push(rc.as_str().to_string());
    codes.dedup();
    let mut names = Vec::new();
    for c in codes {
        if let Ok(Some(r)) = app.region(&c).await {
            names.push(r.name);
        }
    }
    if names.is_empty() {
        code.to_string()
    } else {
        names.join(" ")
    }
}

fn quick_links(role: Role) -> Vec<QuickLink> {
    let l = |label, href, note| QuickLink { label, href, note };
    match role {
        Role::SchoolAdmin => vec![
            l("学生名单", "/students", "查看本校在籍学生及其电子学籍档案"),
            l(
                "跨省转学申请",
                "/transfers/apply?kind=cross_province",
                "为转入本校的学生发起跨省转学申请",
            ),
            l(
                "省内转学申请",
                "/transfers/apply?kind=intra_province",
                "为转入本校的学生发起省内转学申请",
            ),
            l(
                "转学调档",
                "/transfers/pull?kind=cross_province",
                "审核通过后调入学生电子档案",
            ),
        ],
        Role::SchoolReviewer => vec![
            l(
                "跨省转学审核",
                "/transfers/review?kind=cross_province",
                "审核本校的跨省转学业务",
            ),
            l(
                "省内转学审核",
                "/transfers/review?kind=intra_province",
                "审核本校的省内转学业务",
            ),
            l("学生名单", "/students", "查看本校在籍学生"),
        ],
        Role::AuthorityAdmin => vec![
            l(
                "跨省转学审核",
                "/transfers/review?kind=cross_province",
                "审核辖区内的跨省转学业务",
            ),
            l(
                "省内转学审核",
                "/transfers/review?kind=intra_province",
                "审核辖区内的省内转学业务",
            ),
            l("学生名单", "/students", "查询辖区内学生"),
            l("学校列表", "/schools", "查看辖区内学校及班级"),
        ],
        Role::SystemAdmin | Role::SecurityAdmin | Role::AuditAdmin => vec![],
        Role::NationalAdmin => vec![
            l("学校列表", "/schools", "查看全国学校"),
            l("学生名单", "/students", "查询全国学生"),
            l(
                "跨省转学查询",
                "/transfers?kind=cross_province",
                "查询全国跨省转学业务",
            ),
        ],
    }
}

pub async fn home(State(s): State<AppState>, u: WebUser) -> PageResult<HomePage> {
    let layout = Layout::new(&s.app, &u, "工作台", "/").await;
    let todo = work_list(&s.app, &u).await.map_err(|e| layout.fail(e))?;
    let user = &u.user;
    let (org_kind, org_code, jurisdiction) = match &user.org {
        OrgRef::School(code) => {
            let region = match &user.region_code {
                Some(r) => region_path(&s.app, r).await,
                None => String::new(),
            };
            (
                "学校",
                format!("学校标识码 {code}"),
                format!("本校（{region}）"),
            )
        }
        OrgRef::Authority(r) => {
            let path = region_path(&s.app, r).await;
            (
                "学籍主管部门",
                format!("行政区划代码 {r}"),
                format!("{path}及其所辖地区"),
            )
        }
        OrgRef::National => ("国家级", String::new(), "全国".to_string()),
    };
    Ok(HomePage {
        display_name: user.display_name.clone(),
        org_kind,
        org_name: user.org_name.clone(),
        org_code,
        jurisdiction,
        links: quick_links(user.role),
        must_change_password: user.must_change_password,
        todo,
        layout,
    })
}
