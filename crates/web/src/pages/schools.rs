//! 学校管理: `GET /schools` (authorities and the national administrator) and
//! `GET /schools/{code}` (a school's page with its classes; a school sees its own).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use xueji_domain::access::OrgRef;
use xueji_domain::{Error, ErrorCode};

use super::home::region_path;
use super::students::list_href;
use super::{
    Layout, PageResult, Pager, grade_label, last_value, parse_page, status_of, url_encode,
    user_error,
};
use crate::AppState;
use crate::session::WebUser;

pub struct SchoolRow {
    pub href: String,
    pub code: String,
    pub name: String,
    pub school_type: String,
    pub region: String,
    pub authority_name: String,
    pub grades: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "schools.html")]
pub struct SchoolsPage {
    layout: Layout,
    region: String,
    per_page: String,
    error: Option<String>,
    rows: Vec<SchoolRow>,
    pager: Pager,
}

fn grades_text(grades: &[String]) -> String {
    grades
        .iter()
        .map(|g| grade_label(g))
        .collect::<Vec<_>>()
        .join("、")
}

pub async fn list(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> PageResult<Response> {
    // A school has no list to browse: its own page is its school list.
    if let OrgRef::School(code) = &u.user.org {
        return Ok(Redirect::to(&format!("/schools/{}", url_encode(code))).into_response());
    }
    let layout = Layout::new(&s.app, &u, "学校列表", "/schools").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let (region, page_s, per_page_s) = (
        last_value(&pairs, "region"),
        last_value(&pairs, "page"),
        last_value(&pairs, "per_page"),
    );
    let mut error: Option<Error> = None;
    let page = parse_page(&page_s, &per_page_s).unwrap_or_else(|e| {
        error = Some(e);
        xueji_app::paging::Page::default()
    });
    let (items, total) = if error.is_some() {
        (vec![], 0)
    } else {
        let r = (!region.is_empty()).then_some(region.as_str());
        match s.app.schools(&u.user, r, page).await {
            Ok(p) => (p.items, p.total),
            Err(e) => {
                let e = user_error(e);
                if e.code == ErrorCode::Internal {
                    return Err(layout.fail(e));
                }
                error = Some(e);
                (vec![], 0)
            }
        }
    };
    let per_page = if page.per_page == 50 {
        String::new()
    } else {
        per_page_s
    };
    let pager = Pager::new(
        "/schools",
        &[("region", region.as_str()), ("per_page", per_page.as_str())],
        page.page,
        page.per_page,
        total,
    );
    let status = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let rows = items
        .into_iter()
        .map(|sc| SchoolRow {
            href: format!("/schools/{}", url_encode(&sc.code)),
            grades: grades_text(&sc.grades),
            code: sc.code,
            name: sc.name,
            school_type: sc.school_type,
            region: sc.region,
            authority_name: sc.authority_name,
        })
        .collect();
    let page = SchoolsPage {
        layout,
        region,
        per_page,
        error: error.map(|e| e.message),
        rows,
        pager,
    };
    Ok((status, page).into_response())
}

pub struct ClassRow {
    pub name: String,
    pub grade: String,
    pub capacity: i64,
    pub enrolled: i64,
    pub full: bool,
    pub students_href: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "school.html")]
pub struct SchoolPage {
    layout: Layout,
    code: String,
    name: String,
    school_type: String,
    region: String,
    region_name: String,
    authority: String,
    authority_name: String,
    grades: String,
    students_href: String,
    classes: Vec<ClassRow>,
    enrolled_total: i64,
}

pub async fn detail(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
) -> PageResult<SchoolPage> {
    // A school's own page sits under 学生管理 for its users (they have no 学校管理 menu).
    let current = if u.user.role.is_school() {
        "/students"
    } else {
        "/schools"
    };
    let layout = Layout::new(&s.app, &u, "学校信息", current).await;
    let code = path
        .map(|Path(p)| p)
        .map_err(|_| layout.fail(Error::not_found("该学校")))?;
    let sc = s
        .app
        .school(&u.user, &code)
        .await
        .map_err(|e| layout.fail(e))?;
    let classes = s
        .app
        .classes(&u.user, &sc.code)
        .await
        .map_err(|e| layout.fail(e))?;
    let mut layout = layout;
    layout.title = format!("学校信息 - {}", sc.name);
    if let Some(last) = layout.crumbs.last_mut() {
        *last = format!("学校信息（{}）", sc.name);
    }
    let region_name = region_path(&s.app, &sc.region).await;
    Ok(SchoolPage {
        layout,
        students_href: list_href(&sc.code, None),
        enrolled_total: classes.iter().map(|c| c.enrolled).sum(),
        classes: classes
            .into_iter()
            .map(|c| ClassRow {
                students_href: list_href(&sc.code, Some(c.id)),
                grade: grade_label(&c.grade),
                full: c.enrolled >= c.capacity,
                name: c.name,
                capacity: c.capacity,
                enrolled: c.enrolled,
            })
            .collect(),
        grades: grades_text(&sc.grades),
        code: sc.code,
        name: sc.name,
        school_type: sc.school_type,
        region: sc.region,
        region_name,
        authority: sc.authority,
        authority_name: sc.authority_name,
    })
}
