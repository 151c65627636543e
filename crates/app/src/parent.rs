//! Parents' progress (家长查询): with the 查询码 and the student's name, anyone sees the transfer's
//! current step, its due date and the outcome — nothing else (no identity or student number, no
//! school internals). Failed guesses are throttled per address.

use chrono::{Duration, NaiveDate};
use serde::Serialize;
use xueji_domain::transfer::{TransferKind, TransferStatus};
use xueji_domain::{Error, ErrorCode};

use crate::error::AppResult;
use crate::{App, on_pool};

/// Failed queries per address within 15 minutes before further ones are refused.
pub const MAX_QUERY_FAILURES: i64 = 10;

/// What a parent sees.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ParentView {
    /// 跨省转学 / 省内转学.
    pub kind: String,
    /// 待转出学校审核, 四方核办完成，待调档, 已完成, …
    pub status: String,
    /// Who acts now, e.g. 待转入学籍主管部门审核; null once review has ended.
    pub current_step: Option<String>,
    /// When the current step is due.
    pub due_date: Option<NaiveDate>,
    /// 同意 / 不同意 / 已撤销 / 已关闭 once decided; null while in progress.
    pub outcome: Option<String>,
    /// Filed on (Beijing date).
    pub filed_on: NaiveDate,
}

impl App {
    pub async fn parent_query(
        &self,
        code: &str,
        student_name: &str,
        client_ip: &str,
    ) -> AppResult<ParentView> {
        let now = self.clock.now();
        let failures: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM query_failures WHERE ip = $1 AND at > $2"
        ).bind(client_ip).bind(now - Duration::minutes(15)).fetch_one(p).await)?;
        if failures >= MAX_QUERY_FAILURES {
            return Err(Error::new(
                ErrorCode::TooManyRequests,
                "查询失败次数过多，请15分钟后再试",
            )
            .into());
        }
        let code = code.trim().to_uppercase();
        let name = student_name.trim();
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            kind: String,
            status: String,
            student_name: String,
            created_at: chrono::DateTime<chrono::Utc>,
        }
        let row: Option<Row> = if code.len() == 10
            && code.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT id, kind, status, student_name, created_at FROM transfers WHERE query_code = $1"
            ).bind(&code).fetch_optional(p).await)?
        } else {
            None
        };
        let Some(row) = row.filter(|r| r.student_name == name) else {
            on_pool!(self.db.write(), p => sqlx::query("INSERT INTO query_failures (ip, at) VALUES ($1, $2)")
                .bind(client_ip).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
            return Err(Error::new(
                ErrorCode::NotFound,
                "查询码或学生姓名不正确，请核对学校提供的查询码",
            )
            .into());
        };
        let status = TransferStatus::parse(&row.status).unwrap_or(TransferStatus::Completed);
        let (current_step, due_date) = if status.is_review() {
            let step: Option<(String, String, bool, Option<NaiveDate>)> = on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT cs.side, cs.role, cs.shared, cs.due_date FROM transfers t JOIN transfer_steps cs \
                 ON cs.transfer_id = t.id AND cs.idx = t.current_step WHERE t.id = $1"
            ).bind(row.id).fetch_optional(p).await)?;
            match step {
                Some((side, role, shared, due)) => {
                    let who = match (side.as_str(), role.as_str(), shared) {
                        ("in", "school_review", _) => "待转入学校审核",
                        ("out", "school_review", _) => "待转出学校审核",
                        (_, _, true) => "待学籍主管部门审核",
                        ("in", _, _) => "待转入地学籍主管部门审核",
                        _ => "待转出地学籍主管部门审核",
                    };
                    (Some(who.to_string()), due)
                }
                None => (None, None),
            }
        } else {
            (None, None)
        };
        let outcome = match status {
            s if s.is_review() => None,
            TransferStatus::Rejected => Some("不同意"),
            TransferStatus::Withdrawn => Some("已撤销"),
            TransferStatus::Closed => Some("已关闭"),
            _ => Some("同意"),
        };
        let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
        Ok(ParentView {
            kind: TransferKind::parse(&row.kind)
                .map(|k| k.label_zh())
                .unwrap_or("转学")
                .into(),
            status: status.label_zh().into(),
            current_step,
            due_date,
            outcome: outcome.map(str::to_string),
            filed_on: row.created_at.with_timezone(&cst).date_naive(),
        })
    }
}
