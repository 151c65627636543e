//! Reading the audit trail (the audit administrator's only right, 三员分立) and pruning it after
//! the retention period (网络安全法 Art. 21: at least 180 days) without breaking verification.
//!
//! Nothing here alters a row: the program has no way to edit or delete single audit rows; only
//! the operator's `xueji audit prune` removes the oldest ones, and it records itself in the chain.

use chrono::{DateTime, Duration, Utc};
use xueji_domain::Error;
use xueji_domain::access::Role;

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::CurrentUser;
use crate::error::AppResult;
use crate::paging::{Page, Paged};
use crate::{App, on_pool, on_tx};

/// The shortest retention `prune` accepts, in days (网络安全法 Art. 21: six months).
pub const MIN_KEEP_DAYS: i64 = 180;

/// One audit row as the audit administrator reads it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_name: String,
    pub actor_org: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub request_id: Option<String>,
    pub hash: String,
}

/// Filters of the audit list (all optional, exact matches).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct AuditFilter {
    /// e.g. `login`, `password_change`, `account_unseal`.
    pub action: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    /// The actor's user name.
    pub actor: Option<String>,
}

/// What `prune` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: u64,
    /// The newest of the new anchors (the last removed row of each pruned chain), when rows were
    /// removed.
    pub anchor_seq: Option<i64>,
}

impl App {
    /// The audit trail, newest first, for the audit administrator only.
    pub async fn audit_entries(
        &self,
        user: &CurrentUser,
        filter: &AuditFilter,
        page: Page,
    ) -> AppResult<Paged<AuditEntry>> {
        if user.role != Role::AuditAdmin {
            return Err(Error::forbidden("只有安全审计员可以查看操作日志").into());
        }
        let norm = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let (action, etype, eid, actor) = (
            norm(&filter.action),
            norm(&filter.entity_type),
            norm(&filter.entity_id),
            norm(&filter.actor),
        );
        // Absent filters compare a column with itself (one SQL text for every combination).
        let cond = "($1 IS NULL OR action = $1) AND ($2 IS NULL OR entity_type = $2) \
                    AND ($3 IS NULL OR entity_id = $3) AND ($4 IS NULL OR actor_name = $4)";
        let count_sql = format!("SELECT COUNT(*) FROM audit_log WHERE {cond}");
        let total: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))
            .bind(&action).bind(&etype).bind(&eid).bind(&actor).fetch_one(p).await)?;
        let sql = format!(
            "SELECT seq, at, actor_name, actor_org, action, entity_type, entity_id, before_json, \
             after_json, request_id, hash FROM audit_log WHERE {cond} ORDER BY seq DESC LIMIT $5 OFFSET $6"
        );
        let items: Vec<AuditEntry> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&action).bind(&etype).bind(&eid).bind(&actor)
            .bind(page.per_page).bind(page.offset()).fetch_all(p).await)?;
        Ok(Paged { items, total })
    }

    /// Removes audit rows older than `keep_days` (≥ [`MIN_KEEP_DAYS`]). In each chain, the hash
    /// of the last removed row becomes the anchor that `audit::verify` starts that chain from, so
    /// the rest still verifies and any later tampering is still found. The pruning is itself
    /// audited. (The scans here read the whole trail: pruning is a rare operator's job.)
    pub async fn prune_audit(&self, keep_days: i64) -> AppResult<PruneReport> {
        if keep_days < MIN_KEEP_DAYS {
            return Err(Error::validation(
                "keep_days",
                format!("操作日志至少保存{MIN_KEEP_DAYS}天（网络安全法第二十一条）"),
            )
            .into());
        }
        let now = self.clock.now();
        let cutoff = now - Duration::days(keep_days);
        let mut tx = self.db.begin().await?;
        // Per chain, the first row to keep: everything of that chain before it goes, even if a
        // later row is older (rows are removed from the start of each chain only, so what stays
        // of each chain is one unbroken piece, verified from its anchor).
        let keep_from: Vec<(i64, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT chain, MIN(seq) FROM audit_log WHERE at >= $1 GROUP BY chain"
        ).bind(cutoff).fetch_all(&mut *c).await)?;
        let keep_from: std::collections::HashMap<i64, i64> = keep_from.into_iter().collect();
        let chains: Vec<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(
            "SELECT DISTINCT chain FROM audit_log"
        ).fetch_all(&mut *c).await)?;
        let mut removed = 0u64;
        let mut last_anchor: Option<i64> = None;
        for chain in chains {
            let limit = keep_from.get(&chain).copied().unwrap_or(i64::MAX);
            let last: Option<(i64, String)> = on_tx!(&mut tx, c => sqlx::query_as(
                "SELECT seq, hash FROM audit_log WHERE chain = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1"
            ).bind(chain).bind(limit).fetch_optional(&mut *c).await)?;
            let Some((anchor_seq, anchor_hash)) = last else {
                continue;
            };
            removed += on_tx!(&mut tx, c => {
                sqlx::query(
                    "INSERT INTO audit_anchor (id, seq, hash, pruned_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, pruned_at = excluded.pruned_at",
                ).bind(chain).bind(anchor_seq).bind(&anchor_hash).bind(now).execute(&mut *c).await?;
                sqlx::query("DELETE FROM audit_log WHERE chain = $1 AND seq <= $2")
                    .bind(chain).bind(anchor_seq).execute(&mut *c).await.map(|r| r.rows_affected())?
            });
            last_anchor = last_anchor.max(Some(anchor_seq));
        }
        let Some(anchor_seq) = last_anchor else {
            return Ok(PruneReport {
                removed: 0,
                anchor_seq: None,
            });
        };
        audit::record(
            &mut tx,
            now,
            &AuditActor::system("audit-prune"),
            AuditEvent {
                action: "audit_prune",
                entity_type: "audit_log",
                entity_id: anchor_seq.to_string(),
                before: None,
                after: Some(serde_json::json!({
                    "removed": removed, "keep_days": keep_days, "anchor_seq": anchor_seq,
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(PruneReport {
            removed,
            anchor_seq: Some(anchor_seq),
        })
    }
}
