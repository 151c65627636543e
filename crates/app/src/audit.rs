//! The append-only audit trail (操作日志), hash-chained so that `xueji audit verify` finds the
//! first altered or removed row.
//!
//! Each row is written in the same transaction as the change it records. The trail is made of
//! many independent chains (migration 0012): one per province and shard of entities, numbered
//! `province × 100 + shard` (national and system rows: 0–15; chain 1 also holds every row written
//! before chains existed). Each chain has its head in `audit_head` (its last row's `seq` and
//! hash); taking it with an upsert row-locks it on PostgreSQL, so writers of one chain append one
//! after another while writers of other chains go on in parallel — one head for the whole nation
//! serialized every writing transaction.
//!
//! `seq` numbers rows across all chains (a sequence on PostgreSQL, the largest number plus one on
//! SQLite's single writer), taken under the chain's lock, so it grows within each chain; each row
//! also names the `seq` of its chain's previous row (`prev_seq`), so that a missing row is named.
//!
//! Deadlocks: a transaction that writes into several chains must take their heads in ascending
//! order — [`record_many`] writes into one chain, [`lock_chains`] takes several in order.
//! Almost every use case writes one row, hence takes one head.

use std::collections::{BTreeMap, HashMap};
use std::sync::{OnceLock, RwLock};

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
    row_hash_at(
        seq,
        &fmt_time(at),
        actor_user_id,
        actor_name,
        actor_org,
        action,
        entity_type,
        entity_id,
        before,
        after,
        request_id,
        prev_hash,
    )
}

/// [`row_hash`] with the time already formatted (a batch shares one time).
#[allow(clippy::too_many_arguments)]
fn row_hash_at(
    seq: i64,
    at: &str,
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
        at,
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
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Entity shards per province: enough that concurrent writers of one province rarely meet.
pub const SHARDS: i64 = 16;

/// The genesis `prev_hash` of every chain.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain of an entity in a province (`"41"`, or `None` for national and system rows).
pub fn chain_of(province: Option<&str>, entity_type: &str, entity_id: &str) -> i64 {
    let p: i64 = province
        .filter(|p| p.len() >= 2 && p.as_bytes()[..2].iter().all(u8::is_ascii_digit))
        .and_then(|p| p[..2].parse().ok())
        .unwrap_or(0);
    // FNV-1a: stable across builds and platforms (the std hasher is not).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in entity_type.bytes().chain([0x1f]).chain(entity_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    p * 100 + (h % SHARDS as u64) as i64
}

/// School code → province, for rows whose actor is a school (the actor names only the code).
fn school_provinces() -> &'static RwLock<HashMap<String, Option<String>>> {
    static CACHE: OnceLock<RwLock<HashMap<String, Option<String>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The province of the actor's organisation: an authority's region, a school's region (looked up
/// once per school), a 对接 province; `None` for national and system actors.
async fn actor_province(tx: &mut Tx, actor: &AuditActor) -> AppResult<Option<String>> {
    let (kind, code) = actor
        .org
        .split_once(':')
        .unwrap_or((actor.org.as_str(), ""));
    Ok(match kind {
        "authority" | "dock" => Some(code.get(..2).unwrap_or_default().to_string()),
        "school" => {
            if let Some(p) = school_provinces().read().expect("cache").get(code) {
                return Ok(p.clone());
            }
            let region: Option<String> = on_tx!(tx, c => sqlx::query_scalar(
                "SELECT region_code FROM schools WHERE code = $1"
            ).bind(code).fetch_optional(&mut *c).await)?;
            let p = region.and_then(|r| r.get(..2).map(str::to_string));
            // The choice of chain only spreads the load: a stale entry costs nothing.
            school_provinces()
                .write()
                .expect("cache")
                .insert(code.to_string(), p.clone());
            p
        }
        _ => None,
    })
}

/// The next `seq` on this backend, inside the locking statement.
fn lock_sql(tx: &Tx) -> &'static str {
    match tx {
        Tx::Sqlite(_) => {
            "INSERT INTO audit_head (id, seq, hash) VALUES ($1, 0, $2) \
             ON CONFLICT (id) DO UPDATE SET seq = audit_head.seq \
             RETURNING seq, hash, (SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM audit_log \
             UNION ALL SELECT MAX(seq) FROM audit_head)) + 1"
        }
        Tx::Pg(_) => {
            "INSERT INTO audit_head (id, seq, hash) VALUES ($1, 0, $2) \
             ON CONFLICT (id) DO UPDATE SET seq = audit_head.seq \
             RETURNING seq, hash, nextval('audit_log_seq')"
        }
    }
}

/// Locks a chain's head (creating it at the genesis) and returns (last seq, last hash, next seq).
async fn lock_head(tx: &mut Tx, chain: i64) -> AppResult<(i64, String, i64)> {
    let sql = lock_sql(tx);
    let (seq, hash, next): (i64, String, Option<i64>) = on_tx!(tx, c => sqlx::query_as(sql)
        .bind(chain).bind(GENESIS).fetch_one(&mut *c).await)?;
    Ok((seq, hash, next.unwrap_or(1)))
}

/// Takes the heads of several chains in ascending order, for a transaction that will write into
/// more than one (a cross-province change): two such transactions cannot deadlock.
pub async fn lock_chains(tx: &mut Tx, chains: &[i64]) -> AppResult<()> {
    let mut sorted = chains.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for c in sorted {
        lock_head(tx, c).await?;
    }
    Ok(())
}

/// Appends one audit row inside `tx`, in the chain of its entity in the actor's province.
pub async fn record(
    tx: &mut Tx,
    at: DateTime<Utc>,
    actor: &AuditActor,
    event: AuditEvent<'_>,
    request_id: Option<&str>,
) -> AppResult<()> {
    let province = actor_province(tx, actor).await?;
    let chain = chain_of(province.as_deref(), event.entity_type, &event.entity_id);
    record_in(tx, chain, at, actor, event, request_id).await
}

/// Appends one audit row inside `tx`, in the given chain.
pub async fn record_in(
    tx: &mut Tx,
    chain: i64,
    at: DateTime<Utc>,
    actor: &AuditActor,
    event: AuditEvent<'_>,
    request_id: Option<&str>,
) -> AppResult<()> {
    let (prev_seq, prev, seq) = lock_head(tx, chain).await?;
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
    // The row and its chain's new head: on SQLite one text of two statements, run in one call
    // while the writer is held; PostgreSQL prepares one statement per text, so two there.
    let (insert, head) = match tx {
        Tx::Sqlite(_) => (APPEND_SQLITE, None),
        Tx::Pg(_) => (APPEND_ROW, Some(UPDATE_HEAD)),
    };
    on_tx!(tx, c => {
        sqlx::query(insert)
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
        .bind(chain)
        .bind(prev_seq)
        .execute(&mut *c)
        .await?;
        if let Some(head) = head {
            sqlx::query(head).bind(seq).bind(&hash).bind(chain).execute(&mut *c).await?;
        }
    });
    Ok(())
}

/// One audit row; `$1` is its seq, `$13` its hash, `$14` its chain.
macro_rules! append_row {
    () => {
        "INSERT INTO audit_log (seq, at, actor_user_id, actor_name, actor_org, action, \
         entity_type, entity_id, before_json, after_json, request_id, prev_hash, hash, chain, \
         prev_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    };
}
const APPEND_ROW: &str = append_row!();
/// The chain's head moved to a new row: `$1` seq, `$2` hash, `$3` chain.
const UPDATE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = $3";
/// The row, then its chain's head from the row's own parameters (sqlx binds `$N` by number in
/// every statement of a text on SQLite).
const APPEND_SQLITE: &str = concat!(
    append_row!(),
    "; UPDATE audit_head SET seq = $1, hash = $13 WHERE id = $14"
);

/// One row of a batch for [`record_many`]: the event with its JSON already serialized.
#[derive(Debug, Clone)]
pub struct BatchEvent {
    pub action: &'static str,
    pub entity_type: &'static str,
    pub entity_id: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

/// Rows per INSERT statement of [`record_many`] (15 parameters each).
const BATCH_ROWS: usize = 500;

/// Appends many rows to one chain inside `tx`: the chain is computed in memory, the head is taken
/// once and updated once, the rows go in multi-row INSERTs. For bulk writers (the import).
pub async fn record_many(
    tx: &mut Tx,
    chain: i64,
    at: DateTime<Utc>,
    actor: &AuditActor,
    events: Vec<BatchEvent>,
) -> AppResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let (mut prev_seq, mut prev, first) = lock_head(tx, chain).await?;
    // The numbers after the first: the sequence on PostgreSQL, consecutive on SQLite (one writer).
    let seqs: Vec<i64> = match tx {
        Tx::Sqlite(_) => (first..first + events.len() as i64).collect(),
        Tx::Pg(t) => {
            let mut rest: Vec<i64> =
                sqlx::query_scalar("SELECT nextval('audit_log_seq') FROM generate_series(1, $1)")
                    .bind(events.len() as i64 - 1)
                    .fetch_all(&mut **t)
                    .await?;
            rest.sort_unstable();
            std::iter::once(first).chain(rest).collect()
        }
    };
    let sqlite = matches!(tx, Tx::Sqlite(_));
    let mut rows = Vec::with_capacity(events.len());
    let at_text = fmt_time(&at);
    for (e, seq) in events.into_iter().zip(seqs) {
        let hash = row_hash_at(
            seq,
            &at_text,
            actor.user_id,
            &actor.name,
            &actor.org,
            e.action,
            e.entity_type,
            &e.entity_id,
            e.before_json.as_deref(),
            e.after_json.as_deref(),
            None,
            &prev,
        );
        let prev_hash = std::mem::replace(&mut prev, hash.clone());
        rows.push((seq, prev_seq, e, prev_hash, hash));
        prev_seq = seq;
    }
    for part in rows.chunks(BATCH_ROWS) {
        let sql = format!(
            "INSERT INTO audit_log (seq, at, actor_user_id, actor_name, actor_org, action, entity_type, \
             entity_id, before_json, after_json, request_id, prev_hash, hash, chain, prev_seq) VALUES {}",
            values_list(sqlite, part.len(), 15)
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for (seq, pseq, e, ph, h) in part {
                q = q
                    .bind(*seq)
                    .bind(at)
                    .bind(actor.user_id)
                    .bind(actor.name.as_str())
                    .bind(actor.org.as_str())
                    .bind(e.action)
                    .bind(e.entity_type)
                    .bind(e.entity_id.as_str())
                    .bind(e.before_json.as_deref())
                    .bind(e.after_json.as_deref())
                    .bind(None::<&str>)
                    .bind(ph.as_str())
                    .bind(h.as_str())
                    .bind(chain)
                    .bind(*pseq);
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    on_tx!(tx, c => sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = $3")
        .bind(prev_seq).bind(&prev).bind(chain).execute(&mut *c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// `(…), (…)` for a multi-row INSERT of `rows` rows of `cols` parameters. SQLite gets anonymous
/// `?` parameters: sqlx resolves a `$N` parameter by its name, which SQLite looks up by a linear
/// scan, so a statement with thousands of `$N` costs the square of their number.
pub fn values_list(sqlite: bool, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = 0;
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            n += 1;
            if sqlite {
                s.push('?');
            } else {
                s.push('$');
                s.push_str(&n.to_string());
            }
        }
        s.push(')');
    }
    s
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
    chain: i64,
    prev_seq: i64,
}

/// Outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    Intact {
        rows: u64,
    },
    /// The first broken link (the lowest `seq` among the broken chains); [`verify_chains`] names
    /// one per chain.
    Broken {
        seq: i64,
        reason: String,
    },
}

/// The check of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub chain: i64,
    /// Rows verified (up to the first broken link).
    pub rows: u64,
    /// The first broken link: the `seq` of the altered or missing row, and why.
    pub broken: Option<(i64, String)>,
}

/// Walks the whole trail and reports the first broken link of the trail as a whole.
pub async fn verify(db: &Db) -> AppResult<ChainCheck> {
    let chains = verify_chains(db).await?;
    Ok(
        match chains
            .iter()
            .filter_map(|c| c.broken.clone())
            .min_by_key(|(seq, _)| *seq)
        {
            Some((seq, reason)) => ChainCheck::Broken { seq, reason },
            None => ChainCheck::Intact {
                rows: chains.iter().map(|c| c.rows).sum(),
            },
        },
    )
}

/// Walks the whole trail once in `seq` order (pages of 5,000 rows), following every chain at the
/// same time and recomputing every hash; each chain starts from its anchor after pruning
/// (`audit_trail::prune`) or from the genesis, and must end at its head. One report per chain.
pub async fn verify_chains(db: &Db) -> AppResult<Vec<ChainReport>> {
    struct State {
        prev_seq: i64,
        prev: String,
        rows: u64,
        broken: Option<(i64, String)>,
    }
    let anchors: Vec<(i64, i64, String)> = on_pool!(db.read(), p => sqlx::query_as(
        "SELECT id, seq, hash FROM audit_anchor"
    ).fetch_all(p).await)?;
    let heads: Vec<(i64, i64, String)> = on_pool!(db.read(), p => sqlx::query_as(
        "SELECT id, seq, hash FROM audit_head"
    ).fetch_all(p).await)?;
    let mut state: BTreeMap<i64, State> = BTreeMap::new();
    let fresh = |prev_seq: i64, prev: String| State {
        prev_seq,
        prev,
        rows: 0,
        broken: None,
    };
    for (chain, seq, hash) in anchors {
        state.insert(chain, fresh(seq, hash));
    }
    let mut after = i64::MIN;
    loop {
        let page: Vec<AuditRow> = on_pool!(db.read(), p => sqlx::query_as(
            "SELECT seq, at, actor_user_id, actor_name, actor_org, action, entity_type, entity_id, \
             before_json, after_json, request_id, prev_hash, hash, chain, prev_seq FROM audit_log \
             WHERE seq > $1 ORDER BY seq LIMIT 5000"
        ).bind(after).fetch_all(p).await)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            let st = state
                .entry(r.chain)
                .or_insert_with(|| fresh(0, GENESIS.to_string()));
            if st.broken.is_some() {
                continue;
            }
            if r.prev_seq != st.prev_seq {
                // The row this one follows is not the last one seen: rows in between are gone.
                st.broken = Some((r.prev_seq, "row missing".into()));
                continue;
            }
            if r.prev_hash != st.prev {
                st.broken = Some((r.seq, "prev_hash does not match".into()));
                continue;
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
                st.broken = Some((r.seq, "content altered".into()));
                continue;
            }
            st.prev = r.hash;
            st.prev_seq = r.seq;
            st.rows += 1;
        }
    }
    let heads: HashMap<i64, (i64, String)> =
        heads.into_iter().map(|(c, s, h)| (c, (s, h))).collect();
    for (chain, st) in state.iter_mut() {
        if st.broken.is_none() {
            match heads.get(chain) {
                Some((seq, hash)) if *seq == st.prev_seq && *hash == st.prev => {}
                Some((seq, _)) => {
                    st.broken = Some((*seq, "rows missing at the end".into()));
                }
                None => st.broken = Some((st.prev_seq, "rows of a chain without head".into())),
            }
        }
    }
    // A head whose rows are all gone (and no anchor explains it).
    for (chain, (seq, hash)) in &heads {
        if !state.contains_key(chain) && (*seq != 0 || hash != GENESIS) {
            state.insert(
                *chain,
                State {
                    prev_seq: 0,
                    prev: GENESIS.into(),
                    rows: 0,
                    broken: Some((*seq, "rows missing at the end".into())),
                },
            );
        }
    }
    Ok(state
        .into_iter()
        .map(|(chain, st)| ChainReport {
            chain,
            rows: st.rows,
            broken: st.broken,
        })
        .collect())
}
