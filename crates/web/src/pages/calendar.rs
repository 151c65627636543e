//! 系统管理 → 节假日安排: `GET /calendar?year=…` lists the year's announced days (放假 / 调休上班);
//! the national administrator adds, changes (`POST /calendar`, `action=set`) and deletes
//! (`action=delete`) one day; everyone else reads.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike, NaiveDate};
use xueji_domain::Error;
use xueji_domain::access::Role;
use xueji_domain::calendar::DayKind;

use super::transfers::{Opt, check_csrf};
use super::{Layout, PageResult, last_value, status_of, user_error};
use crate::AppState;
use crate::session::WebUser;

type Pairs = Vec<(String, String)>;

const FIRST_YEAR: i32 = 2013;
const LAST_YEAR: i32 = 2027;

pub struct DayRow {
    pub day: String,
    pub weekday: &'static str,
    pub kind: &'static str,
    pub holiday: bool,
    pub name: String,
}

/// The add/change form as typed.
#[derive(Default)]
pub struct DayForm {
    pub day: String,
    pub kind: String,
    pub name: String,
    pub error: String,
    pub error_field: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "calendar.html")]
pub struct CalendarPage {
    layout: Layout,
    year: i32,
    years: Vec<Opt>,
    rows: Vec<DayRow>,
    holidays: usize,
    workdays: usize,
    editable: bool,
    f: DayForm,
    done: &'static str,
}

fn weekday_zh(d: NaiveDate) -> &'static str {
    ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
        [d.weekday().num_days_from_monday() as usize]
}

fn parse_year(s: &str, default: i32) -> Result<i32, Error> {
    if s.is_empty() {
        return Ok(default);
    }
    s.parse::<i32>()
        .ok()
        .filter(|y| (FIRST_YEAR..=LAST_YEAR).contains(y))
        .ok_or_else(|| {
            Error::validation("year", format!("年份应在{FIRST_YEAR}至{LAST_YEAR}年之间"))
        })
}

async fn render(
    s: &AppState,
    u: &WebUser,
    year_s: &str,
    f: DayForm,
    done: &'static str,
    status: StatusCode,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, u, "节假日安排", "/calendar").await;
    let this_year = s.app.clock.today().year().clamp(FIRST_YEAR, LAST_YEAR);
    let year = parse_year(year_s, this_year).map_err(|e| layout.fail(e))?;
    let days = s
        .app
        .calendar_days(year)
        .await
        .map_err(|e| layout.fail(e))?;
    let rows: Vec<DayRow> = days
        .into_iter()
        .map(|d| DayRow {
            day: d.day.format("%Y-%m-%d").to_string(),
            weekday: weekday_zh(d.day),
            holiday: d.kind == "holiday",
            kind: if d.kind == "holiday" {
                "放假"
            } else {
                "调休上班"
            },
            name: d.name,
        })
        .collect();
    let page = CalendarPage {
        holidays: rows.iter().filter(|r| r.holiday).count(),
        workdays: rows.iter().filter(|r| !r.holiday).count(),
        years: (FIRST_YEAR..=LAST_YEAR)
            .rev()
            .map(|y| Opt {
                value: y.to_string(),
                label: format!("{y}年"),
                selected: y == year,
            })
            .collect(),
        year,
        rows,
        editable: u.user.role == Role::NationalAdmin,
        f,
        done,
        layout,
    };
    Ok((status, page).into_response())
}

pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let done = match last_value(&pairs, "done").as_str() {
        "set" => "已保存该日期的安排，新开始的审核环节按新的安排计算办理期限。",
        "deleted" => "已删除该日期的安排。",
        _ => "",
    };
    render(
        &s,
        &u,
        &last_value(&pairs, "year"),
        DayForm::default(),
        done,
        StatusCode::OK,
    )
    .await
}

pub async fn submit(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    let v = |k: &str| last_value(&pairs, k);
    let refused = check_csrf(&u, &v("_csrf")).and_then(|()| {
        if u.user.role == Role::NationalAdmin {
            Ok(())
        } else {
            Err(Error::forbidden("节假日安排只能由全国学籍管理员维护"))
        }
    });
    if let Err(e) = refused {
        let layout = Layout::new(&s.app, &u, "节假日安排", "/calendar").await;
        return Err(layout.fail(e));
    }
    let mut f = DayForm {
        day: v("day"),
        kind: v("kind"),
        name: v("name"),
        ..Default::default()
    };
    let delete = v("action") == "delete";
    let checked: Result<(NaiveDate, Option<DayKind>), Error> = (|| {
        let day = NaiveDate::parse_from_str(&f.day, "%Y-%m-%d")
            .map_err(|_| Error::validation("day", "请填写日期，格式如 2027-01-01"))?;
        if !(FIRST_YEAR..=LAST_YEAR).contains(&day.year()) {
            return Err(Error::validation(
                "day",
                format!("日期应在{FIRST_YEAR}至{LAST_YEAR}年之间"),
            ));
        }
        if delete {
            return Ok((day, None));
        }
        let kind = DayKind::parse(&f.kind)
            .ok_or_else(|| Error::validation("kind", "请选择类型：放假或调休上班"))?;
        Ok((day, Some(kind)))
    })();
    let result = match checked {
        Ok((day, kind)) => s
            .app
            .set_calendar_day(&u.user, day, kind, &f.name)
            .await
            .map(|()| day)
            .map_err(user_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(day) => Ok(Redirect::to(&format!(
            "/calendar?year={}&done={}",
            day.year(),
            if delete { "deleted" } else { "set" }
        ))
        .into_response()),
        Err(e) => {
            let status = status_of(&e);
            let year = NaiveDate::parse_from_str(&f.day, "%Y-%m-%d")
                .ok()
                .map(|d| d.year())
                .filter(|y| (FIRST_YEAR..=LAST_YEAR).contains(y))
                .map(|y| y.to_string())
                .unwrap_or_else(|| v("year"));
            f.error_field = e.field.unwrap_or("day").to_string();
            f.error = e.message;
            render(&s, &u, &year, f, "", status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_are_bounded() {
        assert_eq!(parse_year("", 2026).unwrap(), 2026);
        assert_eq!(parse_year("2013", 2026).unwrap(), 2013);
        assert_eq!(parse_year("2012", 2026).unwrap_err().field, Some("year"));
        assert_eq!(parse_year("x", 2026).unwrap_err().field, Some("year"));
    }

    #[test]
    fn weekdays_in_chinese() {
        assert_eq!(
            weekday_zh(NaiveDate::from_ymd_opt(2024, 9, 29).unwrap()),
            "周日"
        );
    }
}
