//! The append-only audit trail (操作日志), hash-chained so that `xueji audit verify` finds the
//! first altered or removed row.
//!
//! Each row is written in the same transaction as the change it records. The chain head lives in
//! `audit_head`; taking it with an `UPDATE … RETURNING` row-locks it on PostgreSQL, so concurrent
//! transactions append one after another instead of forking the chain.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::db::{Db, Tx};
use crate::error::AppResult;
use crate::{on_pool, on_tx};

/// Who did it, as the audit row names them.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub user_id: Option<i64>,
    pub name: String,
    pub org: String,
}

impl AuditActor {
    pub fn system(what: &str) -> Self {
        Self {
            user_id: None,
            name: format!("system:{what}"),
            org: "system".into(),
        }
    }
}

/// One change to record.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn row_hash(
    seq: i64,
    at: &DateTime<Utc>,
    actor_user_id: Option<i64>,
    actor_name: &str,
    actor_org: &str,
    action: &str,
    entity_type: &str,
    entity_id: &str,
    before: Option<&str>,
    after: Option<&str>,
    request_id: Option<&str>,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    let uid = actor_user_id.map(|u| u.to_string()).unwrap_or_default();
    for part in [
        seq.to_string().as_str(),
        &fmt_time(at),
        &uid,
        actor_name,
        actor_org,
        action,
        entity_type,
        entity_id,
        before.unwrap_or("\u{0}"),
        after.unwrap_or("\u{0}"),
        request_id.unwrap_or("\u{0}"),
        prev_hash,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends one audit row inside `tx`.
pub async fn record(
    tx: &mut Tx,
    at: DateTime<Utc>,
    actor: &AuditActor,
    event: AuditEvent<'_>,
    request_id: Option<&str>,
) -> AppResult<()> {
    let (seq, prev): (i64, String) = on_tx!(tx, c => sqlx::query_as(
        "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash"
    ).fetch_one(&mut *c).await)?;
    let before = event.before.map(|v| v.to_string());
    let after = event.after.map(|v| v.to_string());
    let hash = row_hash(
        seq,
        &at,
        actor.user_id,
        &actor.name,
        &actor.org,
        event.action,
        event.entity_type,
        &event.entity_id,
        before.as_deref(),
        after.as_deref(),
        request_id,
        &prev,
    );
    on_tx!(tx, c => {
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&hash).execute(&mut *c).await?;
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor_user_id, actor_name, actor_org, action, entity_type, \
             entity_id, before_json, after_json, request_id, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(seq)
        .bind(at)
        .bind(actor.user_id)
        .bind(&actor.name)
        .bind(&actor.org)
        .bind(event.action)
        .bind(event.entity_type)
        .bind(&event.entity_id)
        .bind(&before)
        .bind(&after)
        .bind(request_id)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())?
    });
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: DateTime<Utc>,
    actor_user_id: Option<i64>,
    actor_name: String,
    actor_org: String,
    action: String,
    entity_type: String,
    entity_id: String,
    before_json: Option<String>,
    after_json: Option<String>,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
}

/// Outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    Intact { rows: u64 },
    Broken { seq: i64, reason: String },
}

/// Walks the whole chain in pages, recomputing every hash. After pruning (`audit_trail::prune`)
/// the walk starts from the anchor: the number and hash of the last removed row.
pub async fn verify(db: &Db) -> AppResult<ChainCheck> {
    let anchor: Option<(i64, String)> = on_pool!(db.read(), p => sqlx::query_as(
        "SELECT seq, hash FROM audit_anchor WHERE id = 1"
    ).fetch_optional(p).await)?;
    let (mut expected_seq, mut prev) = match anchor {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1i64, "0".repeat(64)),
    };
    let mut rows = 0u64;
    loop {
        let page: Vec<AuditRow> = on_pool!(db.read(), p => sqlx::query_as(
            "SELECT seq, at, actor_user_id, actor_name, actor_org, action, entity_type, entity_id, \
             before_json, after_json, request_id, prev_hash, hash FROM audit_log \
             WHERE seq >= $1 ORDER BY seq LIMIT 5000"
        ).bind(expected_seq).fetch_all(p).await)?;
        if page.is_empty() {
            break;
        }
        for r in page {
            if r.seq != expected_seq {
                return Ok(ChainCheck::Broken {
                    seq: expected_seq,
                    reason: "row missing".into(),
                });
            }
            if r.prev_hash != prev {
                return Ok(ChainCheck::Broken {
                    seq: r.seq,
                    reason: "prev_hash does not match".into(),
                });
            }
            let h = row_hash(
                r.seq,
                &r.at,
                r.actor_user_id,
                &r.actor_name,
                &r.actor_org,
                &r.action,
                &r.entity_type,
                &r.entity_id,
                r.before_json.as_deref(),
                r.after_json.as_deref(),
                r.request_id.as_deref(),
                &r.prev_hash,
            );
            if h != r.hash {
                return Ok(ChainCheck::Broken {
                    seq: r.seq,
                    reason: "content altered".into(),
                });
            }
            prev = r.hash;
            expected_seq += 1;
            rows += 1;
        }
    }
    let (head_seq, head_hash): (i64, String) = on_pool!(db.read(), p => sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(p).await)?;
    if head_seq != expected_seq - 1 || head_hash != prev {
        return Ok(ChainCheck::Broken {
            seq: expected_seq,
            reason: "rows missing at the end".into(),
        });
    }
    Ok(ChainCheck::Intact { rows })
}
