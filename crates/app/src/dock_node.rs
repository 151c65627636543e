//! The provincial node's side of 对接 (`xueji serve --mode province`): its cursor in the hub's
//! feed, the events received (`node_inbox`), and the messages its people queue for the hub
//! (`node_outbox`), each with its idempotency key, kept and re-sent until the hub answers.
//!
//! The sync loop (in the binary) stores a page of events and the new cursor in ONE transaction,
//! and only then acknowledges it at the hub: after a crash it resumes from the stored cursor, and
//! an event seen twice is recognised by its number. A queued message keeps its key across
//! restarts, so a message the hub applied just before a crash is answered from the hub's stored
//! first answer, not applied twice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::{Error, ErrorCode};

use crate::auth::CurrentUser;
use crate::dock::DockEvent;
use crate::error::AppResult;
use crate::{App, on_pool, on_tx};

/// The node's sync state.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NodeStatus {
    pub province: String,
    pub hub: String,
    /// The last event number received and stored.
    pub feed_cursor: i64,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Messages queued and not yet answered by the hub.
    pub pending: i64,
}

/// A transfer as the node last heard of it (its latest event).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeTransfer {
    pub transfer_id: i64,
    pub seq: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A message waiting for delivery to the hub.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NodeMessage {
    pub id: i64,
    pub idem_key: String,
    pub path: String,
    pub body: String,
    pub queued_by: String,
    /// `pending` until the hub answers, then `answered`.
    pub state: String,
    pub status: Option<i64>,
    pub answer: Option<String>,
}

/// The node's sync state and message log are for its authorities (and a national
/// administrator), not for schools: they hold other schools' students.
fn require_authority(user: &CurrentUser) -> AppResult<()> {
    if matches!(user.role, Role::AuthorityAdmin | Role::NationalAdmin) {
        Ok(())
    } else {
        Err(Error::forbidden("省级节点的同步状态和报文由学籍主管部门查看").into())
    }
}

impl App {
    /// The node's sync state, for its authorities.
    pub async fn node_status_for(&self, user: &CurrentUser) -> AppResult<NodeStatus> {
        require_authority(user)?;
        self.node_status().await
    }

    /// Every transfer the node has heard of, for its authorities.
    pub async fn node_transfers_for(&self, user: &CurrentUser) -> AppResult<Vec<NodeTransfer>> {
        require_authority(user)?;
        self.node_transfers().await
    }

    /// The node's queued messages, for its authorities.
    pub async fn node_messages_for(&self, user: &CurrentUser) -> AppResult<Vec<NodeMessage>> {
        require_authority(user)?;
        self.node_messages().await
    }

    /// Records which hub and province this node syncs with (its cursor is kept).
    pub async fn node_init(&self, province: &str, hub: &str) -> AppResult<()> {
        on_pool!(self.db.write(), p => sqlx::query(
            "INSERT INTO node_state (id, province, hub) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET province = $1, hub = $2"
        ).bind(province).bind(hub).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn node_status(&self) -> AppResult<NodeStatus> {
        let s: Option<NodeStatus> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT province, hub, feed_cursor, last_sync_at, last_error, \
             (SELECT COUNT(*) FROM node_outbox WHERE state = 'pending') AS pending FROM node_state WHERE id = 1"
        ).fetch_optional(p).await)?;
        s.ok_or_else(|| Error::not_found("省级节点配置（本实例不是省级节点）").into())
    }

    /// Stores a page of the feed and the new cursor in one transaction.
    pub async fn node_store_events(&self, events: &[DockEvent], next_after: i64) -> AppResult<()> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        for e in events {
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO node_inbox (seq, transfer_id, kind, payload, received_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (seq) DO NOTHING"
            ).bind(e.seq).bind(e.transfer_id).bind(&e.kind).bind(e.data.to_string()).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE node_state SET feed_cursor = CASE WHEN feed_cursor > $1 THEN feed_cursor ELSE $1 END, \
             last_sync_at = $2, last_error = NULL WHERE id = 1"
        ).bind(next_after).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        tx.commit().await
    }

    pub async fn node_sync_failed(&self, error: &str) -> AppResult<()> {
        on_pool!(self.db.write(), p => sqlx::query("UPDATE node_state SET last_error = $1 WHERE id = 1")
            .bind(error.chars().take(500).collect::<String>()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The messages still to deliver, oldest first.
    pub async fn node_pending(&self) -> AppResult<Vec<NodeMessage>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, idem_key, path, body, queued_by, state, status, answer FROM node_outbox \
             WHERE state = 'pending' ORDER BY id"
        ).fetch_all(p).await)?)
    }

    pub async fn node_answered(&self, id: i64, status: u16, answer: &str) -> AppResult<()> {
        on_pool!(self.db.write(), p => sqlx::query(
            "UPDATE node_outbox SET state = 'answered', status = $1, answer = $2, sent_at = $3 WHERE id = $4"
        ).bind(i64::from(status)).bind(answer).bind(self.clock.now()).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The transfers waiting for the caller's organisation, by the latest event of each.
    pub async fn node_todo(&self, user: &CurrentUser) -> AppResult<Vec<NodeTransfer>> {
        Ok(self
            .node_transfers()
            .await?
            .into_iter()
            .filter(|t| acts_now(user, &t.data))
            .collect())
    }

    /// Every transfer the node has heard of, as its latest event shows it.
    pub async fn node_transfers(&self) -> AppResult<Vec<NodeTransfer>> {
        let rows: Vec<(i64, i64, String, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT i.seq, i.transfer_id, i.kind, i.payload FROM node_inbox i \
             WHERE i.seq = (SELECT MAX(j.seq) FROM node_inbox j WHERE j.transfer_id = i.transfer_id) ORDER BY i.seq"
        ).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(seq, transfer_id, kind, payload)| NodeTransfer {
                transfer_id,
                seq,
                kind,
                data: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    /// Queues an action of the caller's organisation for the hub (a review decision, or the
    /// school's withdrawal, 调档 or paper file); the sync loop delivers it. The hub's state
    /// machine has the last word: a stale action is answered `conflict` there.
    pub async fn node_queue_decision(
        &self,
        user: &CurrentUser,
        transfer_id: i64,
        decision: &str,
        opinion: &str,
        method: Option<&str>,
    ) -> AppResult<NodeMessage> {
        // Only a node queues messages for a hub.
        self.node_status().await?;
        let latest: Option<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT payload FROM node_inbox WHERE transfer_id = $1 ORDER BY seq DESC LIMIT 1"
        ).bind(transfer_id).fetch_optional(p).await)?;
        let Some(data) = latest.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        else {
            return Err(Error::not_found("该转学（尚未从全国系统同步）").into());
        };
        let school_admin_of = |field: &str| {
            user.role == Role::SchoolAdmin
                && matches!(&user.org, OrgRef::School(c) if data[field].as_str() == Some(c.as_str()))
        };
        let allowed = match decision {
            "approve" | "reject" => acts_now(user, &data),
            "withdraw" | "pull_file" | "paper_received" => school_admin_of("to_school"),
            "paper_sent" => school_admin_of("from_school"),
            _ => {
                return Err(Error::validation(
                    "decision",
                    "decision 应为 approve、reject、withdraw、pull_file、paper_sent 或 paper_received",
                )
                .into());
            }
        };
        if !allowed {
            return Err(Error::new(ErrorCode::NotYourTurn, "当前不是本单位办理的环节").into());
        }
        if decision == "reject" && opinion.trim().is_empty() {
            return Err(Error::new(ErrorCode::ReasonRequired, "不同意时须填写审核意见").into());
        }
        let step = if matches!(decision, "approve" | "reject") {
            data["waiting"]["step"].as_str().map(str::to_string)
        } else {
            None
        };
        let body = serde_json::json!({
            "decision": decision, "step": step,
            "opinion": Some(opinion.trim()).filter(|o| !o.is_empty()),
            "method": method.map(str::trim).filter(|m| !m.is_empty()),
            "actor_name": user.display_name,
        });
        let path = format!("/api/dock/v1/transfers/{transfer_id}/decisions");
        let key = format!(
            "node-{}-{transfer_id}-{:016x}",
            step.as_deref().unwrap_or(decision),
            rand::random::<u64>()
        );
        self.node_enqueue(user, &key, &path, &body.to_string())
            .await
    }

    /// Queues an application for a student coming into the caller's school.
    pub async fn node_queue_filing(
        &self,
        user: &CurrentUser,
        req: &crate::transfers::NewTransfer,
    ) -> AppResult<NodeMessage> {
        self.node_status().await?;
        let OrgRef::School(code) = &user.org else {
            return Err(Error::forbidden("转学申请须由转入学校的学籍管理员提交").into());
        };
        if user.role != Role::SchoolAdmin {
            return Err(Error::forbidden("转学申请须由转入学校的学籍管理员提交").into());
        }
        let body = serde_json::json!({
            "to_school": code, "from_province": req.from_province, "student_name": req.student_name,
            "student_ref": req.student_ref, "to_grade": req.to_grade, "to_class_id": req.to_class_id,
            "reason": req.reason, "actor_name": user.display_name,
        });
        let key = format!("node-file-{:016x}", rand::random::<u64>());
        self.node_enqueue(user, &key, "/api/dock/v1/transfers", &body.to_string())
            .await
    }

    async fn node_enqueue(
        &self,
        user: &CurrentUser,
        key: &str,
        path: &str,
        body: &str,
    ) -> AppResult<NodeMessage> {
        let msg: NodeMessage = on_pool!(self.db.write(), p => sqlx::query_as(
            "INSERT INTO node_outbox (idem_key, path, body, queued_by, state, created_at) VALUES ($1, $2, $3, $4, 'pending', $5) \
             RETURNING id, idem_key, path, body, queued_by, state, status, answer"
        ).bind(key).bind(path).bind(body).bind(&user.username).bind(self.clock.now()).fetch_one(p).await)?;
        Ok(msg)
    }

    /// The messages queued at this node, newest first (with the hub's answers).
    pub async fn node_messages(&self) -> AppResult<Vec<NodeMessage>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, idem_key, path, body, queued_by, state, status, answer FROM node_outbox ORDER BY id DESC LIMIT 500"
        ).fetch_all(p).await)?)
    }
}

/// Whether the event says the user's organisation acts now (its review step waits).
fn acts_now(user: &CurrentUser, data: &serde_json::Value) -> bool {
    if data["your_turn"] != true {
        return false;
    }
    let party = data["waiting"]["party"].as_str().unwrap_or("");
    let status = data["status"].as_str().unwrap_or("");
    if let OrgRef::School(c) = &user.org
        && user.role == Role::SchoolAdmin
    {
        let field = match status {
            "approved" | "paper_sent" => "to_school",
            "file_pulled" => "from_school",
            _ => return false,
        };
        return data[field].as_str() == Some(c.as_str());
    }
    match (&user.org, data["waiting"]["party_type"].as_str()) {
        (OrgRef::School(c), Some("school")) => c == party && user.role == Role::SchoolReviewer,
        (OrgRef::Authority(r), Some("authority")) => {
            r == party && user.role == Role::AuthorityAdmin
        }
        _ => false,
    }
}
