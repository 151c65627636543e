//! `GET /api/v1/calendar/add-working-days`.

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use xueji_domain::Error;

use crate::AppState;
use crate::error::{ApiQuery, ApiResult, Problem};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AddQuery {
    /// Start date `YYYY-MM-DD` (not counted).
    pub from: String,
    /// Working days to add, 0–3660.
    pub days: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DateOut {
    pub date: NaiveDate,
}

/// The N-th working day after `from`, by the State Council's holiday notices (调休 included).
#[utoipa::path(get, path = "/api/v1/calendar/add-working-days", tag = "calendar", params(AddQuery),
    responses((status = 200, body = DateOut), (status = 422, body = Problem)))]
pub async fn add_working_days(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AddQuery>,
) -> ApiResult<Json<DateOut>> {
    let from = NaiveDate::parse_from_str(q.from.trim(), "%Y-%m-%d")
        .map_err(|_| Error::validation("from", "日期格式应为 YYYY-MM-DD"))?;
    if !(0..=3660).contains(&q.days) {
        return Err(Error::validation("days", "天数应在0到3660之间").into());
    }
    let cal = s.app.calendar();
    let date = cal
        .checked_add_working_days(from, q.days as u32)
        .ok_or_else(|| Error::validation("from", "日期超出可计算范围"))?;
    Ok(Json(DateOut { date }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct YearQuery {
    pub year: i32,
}

/// The holidays and make-up working days listed for a year.
#[utoipa::path(get, path = "/api/v1/calendar/days", tag = "calendar", params(YearQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<xueji_app::calendar_admin::CalendarDay>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn days(
    State(s): State<AppState>,
    crate::session::ApiUser(_user): crate::session::ApiUser,
    ApiQuery(q): ApiQuery<YearQuery>,
) -> ApiResult<Json<Vec<xueji_app::calendar_admin::CalendarDay>>> {
    Ok(Json(s.app.calendar_days(q.year).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayBody {
    /// `holiday` (放假) or `workday` (调休上班).
    pub kind: String,
    /// 元旦, 春节, …
    pub name: String,
}

fn parse_day(s: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| Error::validation("date", "日期格式应为 YYYY-MM-DD"))
}

/// Sets one day (national administrator; for a new year's State Council notice).
#[utoipa::path(put, path = "/api/v1/calendar/days/{date}", tag = "calendar", security(("bearer" = [])),
    params(("date" = String, Path)), request_body = DayBody,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_day(
    State(s): State<AppState>,
    crate::session::ApiUser(u): crate::session::ApiUser,
    crate::error::ApiPath(date): crate::error::ApiPath<String>,
    crate::error::ApiJson(b): crate::error::ApiJson<DayBody>,
) -> ApiResult<axum::http::StatusCode> {
    let day = parse_day(&date)?;
    let kind = xueji_domain::calendar::DayKind::parse(&b.kind).ok_or_else(|| {
        Error::validation("kind", "kind 应为 holiday（放假）或 workday（调休上班）")
    })?;
    s.app.set_calendar_day(&u, day, Some(kind), &b.name).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Removes one listed day (it falls back to the plain Monday–Friday rule).
#[utoipa::path(delete, path = "/api/v1/calendar/days/{date}", tag = "calendar", security(("bearer" = [])),
    params(("date" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn delete_day(
    State(s): State<AppState>,
    crate::session::ApiUser(u): crate::session::ApiUser,
    crate::error::ApiPath(date): crate::error::ApiPath<String>,
) -> ApiResult<axum::http::StatusCode> {
    let day = parse_day(&date)?;
    s.app.set_calendar_day(&u, day, None, "").await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
