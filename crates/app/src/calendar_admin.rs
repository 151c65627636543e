//! The working-day calendar table, editable by the national administrator when the State
//! Council announces a new year's holidays.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use xueji_domain::Error;
use xueji_domain::access::Role;
use xueji_domain::calendar::DayKind;

use crate::audit::{self, AuditEvent};
use crate::auth::CurrentUser;
use crate::error::AppResult;
use crate::{App, on_pool, on_tx};

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CalendarDay {
    pub day: NaiveDate,
    /// `holiday` (放假) or `workday` (调休上班).
    pub kind: String,
    /// 元旦, 春节, …
    pub name: String,
}

impl App {
    /// The listed days of a year.
    pub async fn calendar_days(&self, year: i32) -> AppResult<Vec<CalendarDay>> {
        let from = NaiveDate::from_ymd_opt(year, 1, 1)
            .ok_or_else(|| Error::validation("year", "年份无效"))?;
        let to = NaiveDate::from_ymd_opt(year, 12, 31)
            .ok_or_else(|| Error::validation("year", "年份无效"))?;
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT day, kind, name FROM holidays WHERE day >= $1 AND day <= $2 ORDER BY day"
        ).bind(from).bind(to).fetch_all(p).await)?)
    }

    /// Sets (or, with `kind = None`, removes) one day of the calendar. National administrator only.
    /// Deadlines already computed keep their dates; new steps use the new calendar.
    pub async fn set_calendar_day(
        &self,
        user: &CurrentUser,
        day: NaiveDate,
        kind: Option<DayKind>,
        name: &str,
    ) -> AppResult<()> {
        if user.role != Role::NationalAdmin {
            return Err(Error::forbidden("节假日安排只能由全国学籍管理员维护").into());
        }
        let name = name.trim();
        if kind.is_some() && (name.is_empty() || name.chars().count() > 20) {
            return Err(Error::validation("name", "请填写节日名称（不超过20字）").into());
        }
        if kind == Some(DayKind::Workday)
            && !matches!(
                chrono::Datelike::weekday(&day),
                chrono::Weekday::Sat | chrono::Weekday::Sun
            )
        {
            return Err(Error::validation("kind", "调休上班日应为周六或周日").into());
        }
        let before: Option<CalendarDay> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT day, kind, name FROM holidays WHERE day = $1"
        ).bind(day).fetch_optional(p).await)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, c => sqlx::query("DELETE FROM holidays WHERE day = $1").bind(day).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if let Some(k) = kind {
            on_tx!(&mut tx, c => sqlx::query("INSERT INTO holidays (day, kind, name) VALUES ($1, $2, $3)")
                .bind(day).bind(k.as_str()).bind(name).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "calendar.set_day",
                entity_type: "holiday",
                entity_id: day.to_string(),
                before: before.map(|b| serde_json::json!({ "kind": b.kind, "name": b.name })),
                after: kind.map(|k| serde_json::json!({ "kind": k.as_str(), "name": name })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.reload_calendar().await
    }
}
