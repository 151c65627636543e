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
