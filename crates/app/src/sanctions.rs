//! 处分记录: the school that holds a student records a sanction and may revoke it (解除处分).
//! A sanction in force is a fact the sending province's policy may look at when a transfer is
//! filed (`refuse_sanctioned`). Rows are never deleted: a revoked sanction stays in the record.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use xueji_domain::access::Role;
use xueji_domain::sanction::{SanctionKind, in_force, period_end};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditEvent};
use crate::auth::{CurrentUser, Scope};
use crate::error::AppResult;
use crate::{App, on_pool, on_tx};

/// Longest reason kept, in characters.
const MAX_REASON_CHARS: usize = 500;

/// A sanction as the school records it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSanction {
    /// `warning` (警告), `serious_warning` (严重警告), `demerit` (记过) or `probation` (留校察看).
    pub kind: String,
    /// The facts and the decision's reference (处分事由).
    pub reason: String,
    /// The day of the school's decision (YYYY-MM-DD), not after today.
    pub decided_on: NaiveDate,
    /// Last day in force; when absent, 6 months for warnings and 12 for the others.
    #[serde(default)]
    pub ends_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SanctionOut {
    pub id: i64,
    pub kind: String,
    /// 警告, 严重警告, 记过, 留校察看.
    pub kind_name: String,
    pub reason: String,
    pub decided_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// In force today (not revoked, period not over).
    pub in_force: bool,
    /// 学校标识码 of the school that recorded it.
    pub school: String,
    pub school_name: String,
    pub recorded_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SanctionRow {
    id: i64,
    /// The student's current 学籍号 (to check the caller's scope through the student).
    student_no: String,
    kind: String,
    reason: String,
    decided_on: NaiveDate,
    ends_on: NaiveDate,
    school: String,
    school_name: String,
    recorded_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    revoke_reason: Option<String>,
}

const SANCTION_SELECT: &str = "SELECT s.id, st.student_no, s.kind, s.reason, s.decided_on, s.ends_on, \
    sc.code AS school, sc.name AS school_name, s.recorded_at, s.revoked_at, s.revoke_reason \
    FROM sanctions s JOIN schools sc ON sc.id = s.school_id JOIN students st ON st.id = s.student_id";

impl SanctionRow {
    fn out(self, today: NaiveDate) -> SanctionOut {
        let kind = SanctionKind::parse(&self.kind).ok();
        SanctionOut {
            in_force: in_force(self.ends_on, self.revoked_at.is_some(), today),
            kind_name: kind.map(|k| k.label_zh()).unwrap_or("处分").to_string(),
            id: self.id,
            kind: self.kind,
            reason: self.reason,
            decided_on: self.decided_on,
            ends_on: self.ends_on,
            school: self.school,
            school_name: self.school_name,
            recorded_at: self.recorded_at,
            revoked_at: self.revoked_at,
            revoke_reason: self.revoke_reason,
        }
    }
}

fn check_reason(reason: &str, field: &'static str, missing: &str) -> Result<String, Error> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(Error::new(ErrorCode::ReasonRequired, missing).at(field));
    }
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(Error::validation(field, "事由不能超过500字"));
    }
    Ok(r.to_string())
}

fn only_school_admin() -> Error {
    Error::forbidden("处分记录须由学生所在学校的学籍管理员办理")
}

impl App {
    /// The student a sanction concerns, if the caller may see them; `(id, current school id)`.
    /// Recording and revoking further need the caller to be the current school's administrator.
    async fn sanction_student(
        &self,
        user: &CurrentUser,
        student_no: &str,
        write: bool,
    ) -> AppResult<(i64, Option<i64>, String)> {
        let Some(row) = self.student_row(student_no).await? else {
            return Err(Error::not_found("该学生").into());
        };
        if !self.may_see_student(user, &row).await? {
            return Err(Error::not_found("该学生").into());
        }
        if write {
            let holds_now =
                matches!(user.scope(), Scope::School { id, .. } if Some(id) == row.school_id);
            if !holds_now || user.role != Role::SchoolAdmin {
                return Err(only_school_admin().into());
            }
        }
        Ok((row.id, row.school_id, row.student_no))
    }

    /// 处分记录 of a student, newest first, for anyone who may see the student.
    pub async fn sanctions(
        &self,
        user: &CurrentUser,
        student_no: &str,
    ) -> AppResult<Vec<SanctionOut>> {
        let (id, _, _) = self.sanction_student(user, student_no, false).await?;
        let sql = format!(
            "{SANCTION_SELECT} WHERE s.student_id = $1 ORDER BY s.decided_on DESC, s.id DESC"
        );
        let rows: Vec<SanctionRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id).fetch_all(p).await)?;
        let today = self.clock.today();
        Ok(rows.into_iter().map(|r| r.out(today)).collect())
    }

    /// Whether a sanction is in force for the student on `date`.
    pub(crate) async fn sanctioned_on(&self, student_id: i64, date: NaiveDate) -> AppResult<bool> {
        // Stops at the first row in force (the index is on student_id, ends_on).
        let found: Option<i64> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT id FROM sanctions WHERE student_id = $1 AND revoked_at IS NULL AND ends_on >= $2 LIMIT 1"
        ).bind(student_id).bind(date).fetch_optional(p).await)?;
        Ok(found.is_some())
    }

    /// Records a sanction decided by the caller's school (its 学籍管理员), audited.
    pub async fn record_sanction(
        &self,
        user: &CurrentUser,
        student_no: &str,
        req: &NewSanction,
    ) -> AppResult<SanctionOut> {
        let (student_id, school_id, no) = self.sanction_student(user, student_no, true).await?;
        let school_id = school_id.ok_or_else(only_school_admin)?;
        let kind = SanctionKind::parse(&req.kind)?;
        let reason = check_reason(&req.reason, "reason", "请填写处分事由")?;
        let today = self.clock.today();
        let ends_on = period_end(kind, req.decided_on, req.ends_on, today)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
            "INSERT INTO sanctions (student_id, school_id, kind, reason, decided_on, ends_on, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"
        ).bind(student_id).bind(school_id).bind(kind.as_str()).bind(&reason).bind(req.decided_on)
            .bind(ends_on).bind(user.id).bind(now).fetch_one(&mut *c).await)?;
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "sanction.record",
                entity_type: "student",
                entity_id: no,
                before: None,
                after: Some(serde_json::json!({
                    "sanction_id": id, "kind": kind.as_str(), "reason": reason,
                    "decided_on": req.decided_on, "ends_on": ends_on,
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sanction(id).await
    }

    /// 解除处分: the current school's administrator ends a sanction early, with a reason. The row
    /// stays; a second revocation is a `conflict`.
    pub async fn revoke_sanction(
        &self,
        user: &CurrentUser,
        id: i64,
        reason: &str,
    ) -> AppResult<SanctionOut> {
        let row = self.sanction_row(id).await?;
        let (_, _, no) = self.sanction_student(user, &row.student_no, true).await?;
        let reason = check_reason(reason, "reason", "请填写解除处分的理由")?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE sanctions SET revoked_by = $1, revoked_at = $2, revoke_reason = $3 WHERE id = $4 AND revoked_at IS NULL"
        ).bind(user.id).bind(now).bind(&reason).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(Error::new(ErrorCode::Conflict, "该处分已解除，无需重复操作").into());
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "sanction.revoke",
                entity_type: "student",
                entity_id: no,
                before: Some(serde_json::json!({ "sanction_id": id, "ends_on": row.ends_on })),
                after: Some(serde_json::json!({ "sanction_id": id, "revoke_reason": reason })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.sanction(id).await
    }

    async fn sanction_row(&self, id: i64) -> AppResult<SanctionRow> {
        let sql = format!("{SANCTION_SELECT} WHERE s.id = $1");
        let row: Option<SanctionRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id).fetch_optional(p).await)?;
        row.ok_or_else(|| Error::not_found("该处分记录").into())
    }

    async fn sanction(&self, id: i64) -> AppResult<SanctionOut> {
        Ok(self.sanction_row(id).await?.out(self.clock.today()))
    }
}
