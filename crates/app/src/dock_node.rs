//! The provincial node's side of 对接 (`xueji serve --mode province`): its cursor in the hub's
//! feed, the events received (`node_inbox`), and the messages its people queue for the hub
//! (`node_outbox`), each with its idempotency key, kept and re-sent until the hub answers.
//!
//! The sync loop (in the binary) stores a page of events and the new cursor in ONE transaction,
//! and only then acknowledges it at the hub: after a crash it resumes from the stored cursor, and
//! an event seen twice is recognised by its number. A queued message keeps its key across
//! restarts, so a message the hub applied just before a crash is answered from the hub's stored
//! first answer, not applied twice.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::Gender;
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::CurrentUser;
use crate::db::Tx;
use crate::dock::{self, DockEvent, SignedDocument};
use crate::error::{AppError, AppResult};
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

    /// Stores a page of the feed and the new cursor in one transaction, with the changes of the
    /// node's own roll that the page calls for (see [`App::node_roll_apply`]): a transfer whose
    /// file was pulled queues one roll change, once, however often its events arrive.
    pub async fn node_store_events(&self, events: &[DockEvent], next_after: i64) -> AppResult<()> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let mine: Option<String> = if events.is_empty() {
            None
        } else {
            on_tx!(&mut tx, c => sqlx::query_scalar("SELECT province FROM node_state WHERE id = 1")
                .fetch_optional(&mut *c).await)?
        };
        for e in events {
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO node_inbox (seq, transfer_id, kind, payload, received_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (seq) DO NOTHING"
            ).bind(e.seq).bind(e.transfer_id).bind(&e.kind).bind(e.data.to_string()).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
            if let Some(direction) = mine.as_deref().and_then(|p| roll_direction(p, &e.data)) {
                let field = |k: &str| e.data[k].as_str().unwrap_or("").to_string();
                on_tx!(&mut tx, c => sqlx::query(
                    "INSERT INTO node_roll (transfer_id, seq, direction, student_no, from_school, to_school, to_grade, \
                     state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) ON CONFLICT (transfer_id) DO NOTHING"
                ).bind(e.transfer_id).bind(e.seq).bind(direction).bind(field("student_no")).bind(field("from_school"))
                .bind(field("to_school")).bind(field("to_grade")).bind(now)
                .execute(&mut *c).await.map(|r| r.rows_affected()))?;
            }
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

// ----- the node's own roll (学籍) follows the hub's transfers -----

/// Whether an event calls for a change of the node's roll, and which: `in` when the file was
/// pulled into one of the province's schools, `out` when it was pulled out of one. A transfer
/// whose file was never pulled (withdrawn, refused, still in review) changes nothing.
fn roll_direction(province: &str, data: &serde_json::Value) -> Option<&'static str> {
    let pulled = matches!(
        data["status"].as_str(),
        Some("file_pulled" | "paper_sent" | "completed")
    );
    if !pulled {
        None
    } else if data["to_province"].as_str() == Some(province) {
        Some("in")
    } else if data["from_province"].as_str() == Some(province) {
        Some("out")
    } else {
        None
    }
}

/// A change of the node's roll called for by a pulled transfer: `pending` until applied.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NodeRollTask {
    pub transfer_id: i64,
    /// The event that queued it.
    pub seq: i64,
    /// `in` (enrol from the hub's signed file) or `out` (mark transferred out).
    pub direction: String,
    pub student_no: String,
    pub from_school: String,
    pub to_school: String,
    pub to_grade: String,
    /// `pending`, `applied` or `failed`.
    pub state: String,
    /// What was done, or why it could not be (no identity number here).
    pub outcome: Option<String>,
}

const ROLL_SELECT: &str = "SELECT transfer_id, seq, direction, student_no, from_school, to_school, to_grade, state, outcome \
    FROM node_roll";

/// The parts of the hub's signed electronic file (`xueji.student_archive`) the roll needs.
#[derive(Debug, Deserialize)]
struct FileDoc {
    #[serde(rename = "type")]
    kind: String,
    transfer_id: i64,
    issued_to: String,
    archive: FileStudent,
}

#[derive(Debug, Deserialize)]
struct FileStudent {
    student_no: String,
    name: String,
    gender: String,
    birth_date: NaiveDate,
    status: String,
    id_type: String,
    id_number: Option<String>,
    ethnicity: String,
    identity_status: Option<String>,
    #[serde(default)]
    enrollments: Vec<FileEnrollment>,
    #[serde(default)]
    numbers: Vec<FileNumber>,
}

#[derive(Debug, Deserialize)]
struct FileEnrollment {
    school: String,
    grade: String,
    class_name: Option<String>,
    transfer_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct FileNumber {
    student_no: String,
    kind: String,
    assigned_at: DateTime<Utc>,
    replaced_at: Option<DateTime<Utc>>,
}

/// A student as the node's roll holds them (before a change, for the audit row).
#[derive(Debug, sqlx::FromRow)]
struct RollStudent {
    student_no: String,
    status: String,
    school_id: Option<i64>,
    school: Option<String>,
    grade: Option<String>,
    class_id: Option<i64>,
}

impl RollStudent {
    fn audit(&self) -> serde_json::Value {
        serde_json::json!({
            "student_no": self.student_no, "status": self.status, "school": self.school,
            "grade": self.grade, "class_id": self.class_id,
        })
    }
}

/// A change the roll cannot take (the node lacks the school, the file lacks the identity
/// number, …): the task is marked `failed` with this reason instead of being retried forever.
type Refusal = String;

impl App {
    /// The roll changes still to apply, in the order of the events that called for them.
    pub async fn node_roll_pending(&self) -> AppResult<Vec<NodeRollTask>> {
        let sql = format!("{ROLL_SELECT} WHERE state = 'pending' ORDER BY seq");
        Ok(
            on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(p).await)?,
        )
    }

    /// Every roll change the node has queued, newest first.
    pub async fn node_roll(&self) -> AppResult<Vec<NodeRollTask>> {
        let sql = format!("{ROLL_SELECT} ORDER BY seq DESC LIMIT 500");
        Ok(
            on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(p).await)?,
        )
    }

    /// Applies one roll change in ONE transaction with its audit row and the task's `applied`
    /// mark (guarded by `state = 'pending'`): after a crash either all of it or none is there,
    /// and a second call changes nothing. `in` needs the hub's signed file
    /// (`GET /api/dock/v1/transfers/{id}/file`), verified with `hub_key` (the pinned key; without
    /// one, the key the document names). A bad or foreign document is an error (retried: the
    /// hub may answer properly later); a change the roll cannot take marks the task `failed`.
    /// Returns the outcome.
    pub async fn node_roll_apply(
        &self,
        task: &NodeRollTask,
        file: Option<&SignedDocument>,
        hub_key: Option<&str>,
    ) -> AppResult<String> {
        let province = self.node_status().await?.province;
        let doc = match task.direction.as_str() {
            "in" => {
                let Some(f) = file else {
                    return Err(AppError::Other(format!(
                        "transfer {}: the hub's signed file is needed to enrol the student",
                        task.transfer_id
                    )));
                };
                Some(verify_file(f, hub_key, task.transfer_id, &province)?)
            }
            _ => None,
        };
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let done = match &doc {
            Some(d) => roll_in(&mut tx, task, d, now).await?,
            None => roll_out(&mut tx, task, now).await?,
        };
        let (state, outcome) = match done {
            Ok((outcome, before, after, student_no)) => {
                audit::record(
                    &mut tx,
                    now,
                    &AuditActor {
                        user_id: None,
                        name: "dock:hub".into(),
                        org: format!("dock:{province}"),
                    },
                    AuditEvent {
                        action: if task.direction == "in" {
                            "node.roll_in"
                        } else {
                            "node.roll_out"
                        },
                        entity_type: "student",
                        entity_id: student_no,
                        before,
                        after: Some(after),
                    },
                    None,
                )
                .await?;
                ("applied", outcome)
            }
            Err(reason) => {
                // Nothing of the change is kept: only the mark below.
                drop(tx);
                tx = self.db.begin().await?;
                tracing::warn!(transfer_id = task.transfer_id, %reason, "node roll change refused");
                ("failed", reason)
            }
        };
        let marked = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE node_roll SET state = $1, outcome = $2, applied_at = $3 WHERE transfer_id = $4 AND state = 'pending'"
        ).bind(state).bind(&outcome).bind(now).bind(task.transfer_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if marked != 1 {
            // Applied meanwhile (by another round): this copy is rolled back.
            return Ok("already applied".into());
        }
        tx.commit().await?;
        tracing::info!(transfer_id = task.transfer_id, direction = %task.direction, state, "node roll");
        Ok(outcome)
    }
}

/// Checks the hub's signature and that the file is this transfer's, issued to this province.
fn verify_file(
    f: &SignedDocument,
    hub_key: Option<&str>,
    transfer_id: i64,
    province: &str,
) -> AppResult<FileDoc> {
    let bad = |why: &str| AppError::Other(format!("transfer {transfer_id}: signed file {why}"));
    if let Some(k) = hub_key
        && k.trim() != f.public_key.trim()
    {
        return Err(bad("is signed by another key than the hub's"));
    }
    let key = hub_key.unwrap_or(&f.public_key);
    if !dock::verify_text(key, &f.document, &f.signature) {
        return Err(bad("does not carry the hub's signature"));
    }
    let d: FileDoc =
        serde_json::from_str(&f.document).map_err(|e| bad(&format!("is not readable: {e}")))?;
    if d.kind != "xueji.student_archive" || d.transfer_id != transfer_id || d.issued_to != province
    {
        return Err(bad("is not this transfer's archive for this province"));
    }
    Ok(d)
}

/// The outcome, the audit's before/after and the student number — or why it cannot be done.
type Applied = Result<(String, Option<serde_json::Value>, serde_json::Value, String), Refusal>;

async fn roll_student(tx: &mut Tx, student_id: i64) -> AppResult<RollStudent> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT st.student_no, st.status, st.school_id, sc.code AS school, st.grade, st.class_id \
         FROM students st LEFT JOIN schools sc ON sc.id = st.school_id WHERE st.id = $1"
    ).bind(student_id).fetch_one(&mut *c).await)?)
}

async fn student_by_number(tx: &mut Tx, no: &str) -> AppResult<Option<i64>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT student_id FROM student_numbers WHERE student_no = $1"
    ).bind(no.trim().to_uppercase()).fetch_optional(&mut *c).await)?)
}

/// A student leaving one of the province's schools: the enrollment there ends as 已转出, and the
/// student, no longer at any school of the province, is `transferred_out` (the old school keeps
/// the read-only record, as on the hub).
async fn roll_out(tx: &mut Tx, task: &NodeRollTask, now: DateTime<Utc>) -> AppResult<Applied> {
    let school: Option<i64> = on_tx!(tx, c => sqlx::query_scalar("SELECT id FROM schools WHERE code = $1")
        .bind(&task.from_school).fetch_optional(&mut *c).await)?;
    let Some(school_id) = school else {
        return Ok(Err(format!("本节点没有转出学校 {}", task.from_school)));
    };
    let Some(sid) = student_by_number(tx, &task.student_no).await? else {
        return Ok(Err("本节点名册中没有该学生".into()));
    };
    let before = roll_student(tx, sid).await?;
    let ended = on_tx!(tx, c => sqlx::query(
        "UPDATE enrollments SET status = 'transferred_out', ended_at = $1, transfer_id = $2 \
         WHERE student_id = $3 AND school_id = $4 AND ended_at IS NULL"
    ).bind(now).bind(task.transfer_id).bind(sid).bind(school_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    let left = before.school_id == Some(school_id);
    if left {
        on_tx!(tx, c => sqlx::query(
            "UPDATE students SET status = 'transferred_out', school_id = NULL, class_id = NULL, version = version + 1, \
             updated_at = $1 WHERE id = $2"
        ).bind(now).bind(sid).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    let after = roll_student(tx, sid).await?;
    let outcome = if left {
        format!("已转出：{} → {}", task.from_school, task.to_school)
    } else if ended > 0 {
        format!("{} 的学籍已结束（学生当前不在该校）", task.from_school)
    } else {
        format!("学生不在 {}，名册无变化", task.from_school)
    };
    let mut after_json = after.audit();
    after_json["transfer_id"] = task.transfer_id.into();
    after_json["to_school"] = task.to_school.clone().into();
    Ok(Ok((
        outcome,
        Some(before.audit()),
        after_json,
        before.student_no,
    )))
}

/// A student coming into one of the province's schools: enrolled from the hub's signed file in
/// the school, grade and class (matched by name) the transfer names. A person the node already
/// holds (by any of their numbers, or by identity document) is moved, ending their enrollment
/// elsewhere; one it does not is created with their numbers.
async fn roll_in(
    tx: &mut Tx,
    task: &NodeRollTask,
    d: &FileDoc,
    now: DateTime<Utc>,
) -> AppResult<Applied> {
    let a = &d.archive;
    let school: Option<(i64, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id, region_code FROM schools WHERE code = $1"
    ).bind(&task.to_school).fetch_optional(&mut *c).await)?;
    let Some((school_id, region)) = school else {
        return Ok(Err(format!("本节点没有转入学校 {}", task.to_school)));
    };
    let Some(id_number) = a.id_number.as_deref().filter(|n| !n.trim().is_empty()) else {
        return Ok(Err("电子学籍档案缺少身份证件号码".into()));
    };
    let Some(gender) = Gender::parse(&a.gender) else {
        return Ok(Err("电子学籍档案的性别无效".into()));
    };
    let known: (i64, i64) = on_tx!(tx, c => sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM ethnicities WHERE code = $1), (SELECT COUNT(*) FROM id_types WHERE code = $2)"
    ).bind(&a.ethnicity).bind(&a.id_type).fetch_one(&mut *c).await)?;
    if known != (1, 1) {
        return Ok(Err("电子学籍档案的民族或证件类型不在本节点代码表中".into()));
    }
    // The enrollment this transfer opened at the hub: its grade and class name.
    let here = a
        .enrollments
        .iter()
        .find(|e| e.transfer_id == Some(task.transfer_id) && e.school == task.to_school);
    let grade = here.map_or(task.to_grade.clone(), |e| e.grade.clone());
    let class_name = here.and_then(|e| e.class_name.clone());
    let class_id: Option<i64> = match &class_name {
        Some(n) => on_tx!(tx, c => sqlx::query_scalar(
            "SELECT id FROM classes WHERE school_id = $1 AND grade = $2 AND name = $3"
        ).bind(school_id).bind(&grade).bind(n).fetch_optional(&mut *c).await)?,
        None => None,
    };
    let mut found = None;
    for no in std::iter::once(&a.student_no).chain(a.numbers.iter().map(|n| &n.student_no)) {
        found = student_by_number(tx, no).await?;
        if found.is_some() {
            break;
        }
    }
    if found.is_none() {
        found = on_tx!(tx, c => sqlx::query_scalar(
            "SELECT id FROM students WHERE id_type = $1 AND id_number = $2"
        ).bind(&a.id_type).bind(id_number).fetch_optional(&mut *c).await)?;
    }
    let identity_status = a.identity_status.as_deref().unwrap_or("passed");
    let (sid, before) = match found {
        Some(sid) => {
            let before = roll_student(tx, sid).await?;
            on_tx!(tx, c => sqlx::query(
                "UPDATE enrollments SET status = 'transferred_out', ended_at = $1, transfer_id = $2 \
                 WHERE student_id = $3 AND ended_at IS NULL"
            ).bind(now).bind(task.transfer_id).bind(sid).execute(&mut *c).await.map(|r| r.rows_affected()))?;
            on_tx!(tx, c => sqlx::query(
                "UPDATE students SET student_no = $1, id_type = $2, id_number = $3, name = $4, gender = $5, birth_date = $6, \
                 ethnicity = $7, status = $8, school_id = $9, grade = $10, class_id = $11, region_code = $12, \
                 identity_status = $13, version = version + 1, updated_at = $14 WHERE id = $15"
            ).bind(&a.student_no).bind(&a.id_type).bind(id_number).bind(&a.name).bind(gender.code()).bind(a.birth_date)
            .bind(&a.ethnicity).bind(&a.status).bind(school_id).bind(&grade).bind(class_id).bind(&region)
            .bind(identity_status).bind(now).bind(sid).execute(&mut *c).await.map(|r| r.rows_affected()))?;
            (sid, Some(before.audit()))
        }
        None => {
            let sid: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "INSERT INTO students (student_no, id_type, id_number, name, gender, birth_date, ethnicity, status, \
                 school_id, grade, class_id, region_code, identity_status, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $14) RETURNING id"
            ).bind(&a.student_no).bind(&a.id_type).bind(id_number).bind(&a.name).bind(gender.code()).bind(a.birth_date)
            .bind(&a.ethnicity).bind(&a.status).bind(school_id).bind(&grade).bind(class_id).bind(&region)
            .bind(identity_status).bind(now).fetch_one(&mut *c).await)?;
            (sid, None)
        }
    };
    let current = FileNumber {
        student_no: a.student_no.clone(),
        kind: if a.student_no.starts_with('L') {
            "temporary"
        } else {
            "formal"
        }
        .into(),
        assigned_at: now,
        replaced_at: None,
    };
    let listed = a.numbers.iter().any(|n| n.student_no == a.student_no);
    for n in a.numbers.iter().chain((!listed).then_some(&current)) {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO student_numbers (student_no, student_id, kind, assigned_at, replaced_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (student_no) DO NOTHING"
        ).bind(&n.student_no).bind(sid).bind(&n.kind).bind(n.assigned_at).bind(n.replaced_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at, transfer_id, entry_kind) \
         VALUES ($1, $2, $3, $4, 'active', $5, $6, 'transfer_in')"
    ).bind(sid).bind(school_id).bind(&grade).bind(class_id).bind(now).bind(task.transfer_id)
    .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    let after = roll_student(tx, sid).await?;
    let mut after_json = after.audit();
    after_json["transfer_id"] = task.transfer_id.into();
    after_json["from_school"] = task.from_school.clone().into();
    let outcome = match (&before, class_id) {
        (None, Some(_)) => format!(
            "已转入：{} {}",
            task.to_school,
            class_name.unwrap_or_default()
        ),
        (Some(_), Some(_)) => format!(
            "已转入：{} {}（原有记录已转移）",
            task.to_school,
            class_name.unwrap_or_default()
        ),
        (_, None) => format!("已转入：{}（本节点无同名班级，未分班）", task.to_school),
    };
    Ok(Ok((outcome, before, after_json, after.student_no)))
}
