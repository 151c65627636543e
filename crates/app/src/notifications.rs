//! 消息: notifications addressed to an organisation (every user of it sees them).

use chrono::{DateTime, Utc};
use serde::Serialize;
use xueji_domain::access::OrgRef;

use crate::auth::CurrentUser;
use crate::db::Tx;
use crate::error::AppResult;
use crate::paging::{Page, Paged};
use crate::{App, on_pool, on_tx};

/// (`org_kind`, `org_code`) of an organisation as notifications address it.
pub fn org_key(org: &OrgRef) -> (&'static str, String) {
    match org {
        OrgRef::School(c) => ("school", c.clone()),
        OrgRef::Authority(r) => ("authority", r.clone()),
        OrgRef::National => ("national", String::new()),
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NotificationOut {
    pub id: i64,
    /// `step_waiting`, `step_approved`, `approved`, `rejected`, `withdrawn`, `file_pulled`,
    /// `paper_sent`, `paper_received`.
    pub kind: String,
    pub transfer_id: Option<i64>,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

/// Adds one notification inside the transaction of the change it announces.
pub async fn notify(
    tx: &mut Tx,
    org: &OrgRef,
    kind: &str,
    transfer_id: Option<i64>,
    text: &str,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let (k, c) = org_key(org);
    on_tx!(tx, conn => sqlx::query(
        "INSERT INTO notifications (org_kind, org_code, kind, transfer_id, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
    ).bind(k).bind(&c).bind(kind).bind(transfer_id).bind(text).bind(at).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Adds the notifications of one change inside its transaction, in one INSERT: (organisation,
/// kind, text) each.
pub async fn notify_all(
    tx: &mut Tx,
    transfer_id: Option<i64>,
    at: DateTime<Utc>,
    notices: &[(&OrgRef, &str, String)],
) -> AppResult<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let values = (0..notices.len())
        .map(|i| {
            let p = i * 4;
            format!("(${}, ${}, ${}, ${}, $1, $2)", p + 3, p + 4, p + 5, p + 6)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO notifications (org_kind, org_code, kind, text, transfer_id, created_at) VALUES {values}"
    );
    on_tx!(tx, conn => {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(transfer_id).bind(at);
        for (org, kind, text) in notices {
            let (k, c) = org_key(org);
            q = q.bind(k).bind(c).bind(*kind).bind(text.as_str());
        }
        q.execute(&mut *conn).await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

impl App {
    /// The caller organisation's messages, newest first.
    pub async fn notifications(
        &self,
        user: &CurrentUser,
        unread_only: bool,
        page: Page,
    ) -> AppResult<Paged<NotificationOut>> {
        let (k, c) = org_key(&user.org);
        let total: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE org_kind = $1 AND org_code = $2 AND ($3 = FALSE OR read_at IS NULL)"
        ).bind(k).bind(&c).bind(unread_only).fetch_one(p).await)?;
        let items: Vec<NotificationOut> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, kind, transfer_id, text, created_at, read_at IS NOT NULL AS read FROM notifications \
             WHERE org_kind = $1 AND org_code = $2 AND ($3 = FALSE OR read_at IS NULL) ORDER BY id DESC LIMIT $4 OFFSET $5"
        ).bind(k).bind(&c).bind(unread_only).bind(page.per_page).bind(page.offset()).fetch_all(p).await)?;
        Ok(Paged { items, total })
    }

    pub async fn unread_count(&self, user: &CurrentUser) -> AppResult<i64> {
        let (k, c) = org_key(&user.org);
        Ok(on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE org_kind = $1 AND org_code = $2 AND read_at IS NULL"
        ).bind(k).bind(&c).fetch_one(p).await)?)
    }

    /// Marks the given messages (or all, when `ids` is empty) of the caller's organisation read.
    pub async fn mark_read(&self, user: &CurrentUser, ids: &[i64]) -> AppResult<u64> {
        let (k, c) = org_key(&user.org);
        let now = self.clock.now();
        if ids.is_empty() {
            return Ok(on_pool!(self.db.write(), p => sqlx::query(
                "UPDATE notifications SET read_at = $1 WHERE org_kind = $2 AND org_code = $3 AND read_at IS NULL"
            ).bind(now).bind(k).bind(&c).execute(p).await.map(|r| r.rows_affected()))?);
        }
        let mut n = 0;
        for id in ids {
            n += on_pool!(self.db.write(), p => sqlx::query(
                "UPDATE notifications SET read_at = $1 WHERE id = $2 AND org_kind = $3 AND org_code = $4 AND read_at IS NULL"
            ).bind(now).bind(id).bind(k).bind(&c).execute(p).await.map(|r| r.rows_affected()))?;
        }
        Ok(n)
    }
}
