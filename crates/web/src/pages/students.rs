//! 学生管理: `GET /students` (the filtered, paginated list), `GET /students/open` (the toolbar's
//! 明细 button on the selected row) and `GET /students/{student_no}` (电子学籍档案).

use std::collections::HashMap;
use std::sync::LazyLock;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use xueji_app::students::{StudentFilter, status_label_zh};
use xueji_domain::access::OrgRef;
use xueji_domain::ids::Grade;
use xueji_domain::{Error, ErrorCode};

use super::{
    Layout, PageResult, Pager, fmt_date, fmt_time, gender_label, grade_label, last_value,
    parse_page, query_string, status_of, url_encode, user_error,
};
use crate::AppState;
use crate::session::WebUser;

type Pairs = Vec<(String, String)>;

/// A `<select>` option.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The filter bar as the user filled it in, and what is wrong with it.
pub struct Filters {
    pub q: String,
    pub school: String,
    pub region: String,
    pub class_id: String,
    pub per_page: String,
    /// Authorities and the national administrator may pick a school and a region.
    pub wide: bool,
    pub grades: Vec<Opt>,
    pub classes: Vec<Opt>,
    pub error: Option<String>,
    /// The field at fault (`grade`, `school`, `region`, `class_id`, `page`, `per_page`, `q`).
    pub error_field: String,
}

pub struct StudentRow {
    pub href: String,
    pub student_no: String,
    pub name: String,
    pub gender: &'static str,
    pub birth_date: String,
    pub id_masked: String,
    pub grade: String,
    pub class_name: String,
    pub status: &'static str,
    pub business: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "students.html")]
pub struct StudentsPage {
    layout: Layout,
    f: Filters,
    rows: Vec<StudentRow>,
    pager: Pager,
    /// The school whose list this is, when one is fixed (its name for the heading).
    school_name: String,
}

fn business_label(b: Option<&str>) -> &'static str {
    match b {
        Some("transfer") => "转学办理中",
        Some("status_change") => "学籍异动办理中",
        Some("key_change") => "关键数据变更办理中",
        Some(_) => "有在办业务",
        None => "",
    }
}

pub async fn list(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "学生名单", "/students").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let user = &u.user;
    let wide = !user.role.is_school();
    let v = |k: &str| last_value(&pairs, k);
    let (school, region) = if wide {
        (v("school"), v("region"))
    } else {
        (String::new(), String::new())
    };
    let (grade, q, class_id, page_s, per_page_s) =
        (v("grade"), v("q"), v("class_id"), v("page"), v("per_page"));

    // Validate what the page itself parses; the rest is the use case's to judge.
    let mut error: Option<Error> = None;
    let page = match parse_page(&page_s, &per_page_s) {
        Ok(p) => p,
        Err(e) => {
            error = Some(e);
            xueji_app::paging::Page::default()
        }
    };
    let class_num = if class_id.is_empty() {
        None
    } else {
        match class_id.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                error.get_or_insert(Error::validation("class_id", "班级参数无效"));
                None
            }
        }
    };
    if !school.is_empty()
        && let Err(e) = xueji_domain::ids::parse_school_code(&school)
    {
        error.get_or_insert(e);
    }
    if q.chars().count() > 50 {
        error.get_or_insert(Error::validation("q", "查询内容过长"));
    }

    let filter = StudentFilter {
        school: (!school.is_empty()).then(|| school.clone()),
        region: (!region.is_empty()).then(|| region.clone()),
        grade: (!grade.is_empty()).then(|| grade.clone()),
        class_id: class_num,
        q: (!q.is_empty()).then(|| q.clone()),
    };
    let (rows, total) = if error.is_some() {
        (vec![], 0)
    } else {
        match s.app.students(user, &filter, page).await {
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

    // The school whose classes the class selector offers.
    let fixed_school = match &user.org {
        OrgRef::School(code) => Some(code.clone()),
        _ if !school.is_empty() && error.as_ref().is_none_or(|e| e.field != Some("school")) => {
            Some(school.clone())
        }
        _ => None,
    };
    let mut classes = vec![];
    let mut school_name = String::new();
    // A school's own grades only, when the list is one school's.
    let mut grade_codes: Vec<String> = Grade::ALL.iter().map(|g| g.code()).collect();
    if let Some(code) = &fixed_school
        && let Ok(sc) = s.app.school(user, code).await
    {
        school_name = sc.name;
        if !sc.grades.is_empty() {
            grade_codes = sc.grades;
        }
        if let Ok(list) = s.app.classes(user, code).await {
            classes = list
                .into_iter()
                .filter(|c| grade.is_empty() || c.grade == grade)
                .map(|c| Opt {
                    selected: c.id.to_string() == class_id,
                    value: c.id.to_string(),
                    label: c.name,
                })
                .collect();
        }
    }

    let keep: Vec<(&str, &str)> = vec![
        ("school", school.as_str()),
        ("region", region.as_str()),
        ("grade", grade.as_str()),
        ("class_id", class_id.as_str()),
        ("q", q.as_str()),
        (
            "per_page",
            if page.per_page == 50 {
                ""
            } else {
                per_page_s.as_str()
            },
        ),
    ];
    let pager = Pager::new("/students", &keep, page.page, page.per_page, total);
    let status = error.as_ref().map(status_of).unwrap_or(StatusCode::OK);
    let rows = rows
        .into_iter()
        .map(|st| StudentRow {
            href: format!("/students/{}", url_encode(&st.student_no)),
            gender: gender_label(&st.gender),
            birth_date: st.birth_date.format("%Y-%m-%d").to_string(),
            id_masked: st.id_number_masked,
            grade: st.grade.as_deref().map(grade_label).unwrap_or_default(),
            class_name: st.class_name.unwrap_or_default(),
            status: status_label_zh(&st.status),
            business: business_label(st.open_business.as_deref()),
            student_no: st.student_no,
            name: st.name,
        })
        .collect();
    let grades = Grade::ALL
        .iter()
        .filter(|g| grade_codes.contains(&g.code()) || g.code() == grade)
        .map(|g| Opt {
            value: g.code(),
            label: g.label_zh().to_string(),
            selected: g.code() == grade,
        })
        .collect();
    let page = StudentsPage {
        layout,
        f: Filters {
            error_field: error
                .as_ref()
                .and_then(|e| e.field)
                .unwrap_or_default()
                .to_string(),
            error: error.map(|e| e.message),
            q,
            school,
            region,
            class_id,
            per_page: if page.per_page == 50 {
                String::new()
            } else {
                per_page_s
            },
            wide,
            grades,
            classes,
        },
        rows,
        pager,
        school_name,
    };
    Ok((status, page).into_response())
}

/// The toolbar's 明细 button: the selected row's student number → its detail page.
pub async fn open(_u: WebUser, query: Result<Query<Pairs>, QueryRejection>) -> Redirect {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let no = last_value(&pairs, "student_no");
    if no.is_empty() {
        Redirect::to("/students")
    } else {
        Redirect::to(&format!("/students/{}", url_encode(&no)))
    }
}

/// Identity document type names (身份证件类型, JY/T 1001), from the shipped code table.
static ID_TYPES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    include_str!("../../../../data/id_types.csv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("code,"))
        .filter_map(|l| l.split_once(','))
        .map(|(c, n)| (c.trim().to_string(), n.trim().to_string()))
        .collect()
});

fn id_type_label(code: &str) -> String {
    ID_TYPES
        .get(code)
        .cloned()
        .unwrap_or_else(|| code.to_string())
}

pub struct NumberRow {
    pub student_no: String,
    pub kind: &'static str,
    pub assigned_at: String,
    pub replaced_at: String,
}

pub struct EnrollmentRow {
    pub school: String,
    pub school_name: String,
    pub grade: String,
    pub class_name: String,
    pub status: &'static str,
    pub active: bool,
    pub started_at: String,
    pub ended_at: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "student.html")]
pub struct StudentPage {
    layout: Layout,
    student_no: String,
    name: String,
    gender: &'static str,
    birth_date: String,
    ethnicity: String,
    id_type: String,
    id_number: String,
    /// Whether `id_number` is the whole number (the school holding the student).
    id_full: bool,
    school: String,
    school_name: String,
    grade: String,
    class_name: String,
    status: &'static str,
    business: &'static str,
    created_at: String,
    numbers: Vec<NumberRow>,
    enrollments: Vec<EnrollmentRow>,
    /// Identity checks, problem records, transfers, status changes (电子学籍档案).
    history: super::archive::History,
}

pub async fn detail(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
) -> PageResult<StudentPage> {
    let layout = Layout::new(&s.app, &u, "学生详情", "/students").await;
    let no = path
        .map(|Path(p)| p)
        .map_err(|_| layout.fail(Error::not_found("该学生")))?;
    let (d, history) = super::archive::load(&s.app, &u.user, &no)
        .await
        .map_err(|e| layout.fail(e))?;
    let mut layout = layout;
    layout.title = format!("学生详情 - {}", d.summary.name);
    if let Some(last) = layout.crumbs.last_mut() {
        *last = format!("学生详情（{}）", d.summary.name);
    }
    let sm = d.summary;
    Ok(StudentPage {
        layout,
        id_full: d.id_number.is_some(),
        id_number: d.id_number.unwrap_or(sm.id_number_masked),
        student_no: sm.student_no,
        name: sm.name,
        gender: gender_label(&sm.gender),
        birth_date: sm.birth_date.format("%Y-%m-%d").to_string(),
        ethnicity: d.ethnicity_name,
        id_type: id_type_label(&d.id_type),
        school: d.school.unwrap_or_default(),
        school_name: d.school_name.unwrap_or_default(),
        grade: d
            .grade_name
            .or_else(|| sm.grade.as_deref().map(grade_label))
            .unwrap_or_default(),
        class_name: sm.class_name.unwrap_or_default(),
        status: status_label_zh(&sm.status),
        business: business_label(sm.open_business.as_deref()),
        created_at: fmt_time(&d.created_at),
        numbers: d
            .numbers
            .into_iter()
            .map(|n| NumberRow {
                kind: match n.kind.as_str() {
                    "formal" => "正式学籍号",
                    "temporary" => "临时学籍号",
                    _ => "学籍号",
                },
                student_no: n.student_no,
                assigned_at: fmt_time(&n.assigned_at),
                replaced_at: n.replaced_at.as_ref().map(fmt_time).unwrap_or_default(),
            })
            .collect(),
        enrollments: d
            .enrollments
            .into_iter()
            .map(|e| EnrollmentRow {
                school: e.school,
                school_name: e.school_name,
                grade: grade_label(&e.grade),
                class_name: e.class_name.unwrap_or_default(),
                active: e.status == "active",
                status: super::archive::enrollment_status(&e.status),
                started_at: fmt_date(&e.started_at),
                ended_at: e.ended_at.as_ref().map(fmt_date).unwrap_or_default(),
            })
            .collect(),
        history,
    })
}

/// A query-string link to the student list of one school (and class).
pub fn list_href(school: &str, class_id: Option<i64>) -> String {
    let class = class_id.map(|c| c.to_string()).unwrap_or_default();
    format!(
        "/students{}",
        query_string(&[("school", school), ("class_id", class.as_str())])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_types_come_from_the_code_table() {
        assert_eq!(id_type_label("1"), "居民身份证");
        assert_eq!(id_type_label("A"), "护照");
        assert_eq!(id_type_label("?"), "?");
    }
}
