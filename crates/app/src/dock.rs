//! 对接 (docking): provinces that run their own student systems take part in transfers through a
//! machine interface (`/api/dock/v1`, protocol in `docs/docking.md`).
//!
//! - A **docked province** is registered by the national administrator with its system's Ed25519
//!   public key. From then on every step whose party (school or authority) lies in that province
//!   — review decisions, and the receiving/sending school's withdrawal, 调档 and paper file — is
//!   taken by its system through the interface; people in the national UI/API get `docked_party`.
//! - The **outbox**: each transfer change writes, in its own transaction, one event per docked
//!   province concerned, numbered by that province's sequence (`docked_provinces.last_seq`, taken
//!   with `UPDATE … RETURNING`, which row-locks it on PostgreSQL until commit — so numbers are
//!   handed out in commit order and a reader never skips one that commits late).
//! - Every request is **signed** over method, path, timestamp, province, idempotency key and body
//!   SHA-256; refusals are logged in `dock_messages` like accepted requests.
//! - Every POST carries an **idempotency key**: the first answer is stored and returned to any
//!   repeat, which changes nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xueji_domain::access::{Actor, OrgRef, Role};
use xueji_domain::transfer::{Action, StepRole, TransferStatus};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::CurrentUser;
use crate::db::Tx;
use crate::error::AppResult;
use crate::paging::{Page, Paged};
use crate::transfers::{NewTransfer, StepRow, TransferDetail, TransferRow, Who};
use crate::{App, on_pool, on_tx};

pub use ed25519_dalek::SigningKey as DockKey;

/// Requests whose timestamp is further than this from the hub's clock are refused.
pub const CLOCK_WINDOW_SECS: i64 = 300;
/// First line of every signature base string (names the scheme and its version).
pub const SCHEME: &str = "XUEJI-DOCK-V1";
/// Longest accepted idempotency key.
pub const MAX_IDEM_KEY: usize = 128;
/// A key still `pending` after this long belongs to a request that died (a crash): a repeat runs
/// it again. The transfer's state machine and version guard keep that from applying twice.
pub const PENDING_TAKEOVER_SECS: i64 = 60;

pub const HEADER_PROVINCE: &str = "x-dock-province";
pub const HEADER_TIMESTAMP: &str = "x-dock-timestamp";
pub const HEADER_SIGNATURE: &str = "x-dock-signature";
pub const HEADER_IDEMPOTENCY: &str = "idempotency-key";

/// Lowercase hex SHA-256 of a body (of the empty string for a GET).
pub fn body_sha256_hex(body: &[u8]) -> String {
    let d = Sha256::digest(body);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text that is signed: seven lines joined by `\n`, no trailing newline.
pub fn base_string(
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    province: &str,
    idem_key: &str,
    body: &[u8],
) -> String {
    format!(
        "{SCHEME}\n{}\n{path_and_query}\n{timestamp}\n{province}\n{idem_key}\n{}",
        method.to_ascii_uppercase(),
        body_sha256_hex(body)
    )
}

/// The text the hub signs for each answer on `/api/dock/v1` (headers `X-Dock-Timestamp`,
/// `X-Dock-Signature` of the response): it binds the answer to the request it answers.
pub fn response_base_string(
    status: u16,
    req: &DockRequest<'_>,
    timestamp: &str,
    body: &[u8],
) -> String {
    format!(
        "{SCHEME}-RESPONSE\n{status}\n{}\n{}\n{timestamp}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        req.path_and_query,
        req.province.unwrap_or(""),
        req.idem_key.unwrap_or(""),
        body_sha256_hex(body)
    )
}

/// A new random Ed25519 key.
pub fn new_key() -> SigningKey {
    let seed: [u8; 32] = rand::random();
    SigningKey::from_bytes(&seed)
}

/// Base64 of a key's 32-byte seed (the secret), as the key file of a provincial node holds it.
pub fn secret_b64(key: &SigningKey) -> String {
    B64.encode(key.to_bytes())
}

/// Base64 of a key's 32-byte public half, as the national administrator registers it.
pub fn public_b64(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().to_bytes())
}

pub fn key_from_secret_b64(s: &str) -> Option<SigningKey> {
    let bytes: [u8; 32] = B64.decode(s.trim()).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&bytes))
}

fn public_from_b64(s: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(s.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Base64 Ed25519 signature of a text.
pub fn sign_text(key: &SigningKey, text: &str) -> String {
    B64.encode(key.sign(text.as_bytes()).to_bytes())
}

/// Whether `signature_b64` is `public_b64`'s signature of `text`.
pub fn verify_text(public_b64: &str, text: &str, signature_b64: &str) -> bool {
    let Some(key) = public_from_b64(public_b64) else {
        return false;
    };
    let Some(sig) = B64
        .decode(signature_b64.trim())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    key.verify(text.as_bytes(), &Signature::from_bytes(&sig))
        .is_ok()
}

/// The headers a provincial system sends with one request (name, value).
pub fn sign_request(
    key: &SigningKey,
    province: &str,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    idem_key: Option<&str>,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let base = base_string(
        method,
        path_and_query,
        &ts,
        province,
        idem_key.unwrap_or(""),
        body,
    );
    let mut h = vec![
        (HEADER_PROVINCE, province.to_string()),
        (HEADER_TIMESTAMP, ts),
        (HEADER_SIGNATURE, sign_text(key, &base)),
    ];
    if let Some(k) = idem_key {
        h.push((HEADER_IDEMPOTENCY, k.to_string()));
    }
    h
}

/// One request as received, for verification and the message log.
#[derive(Debug, Clone)]
pub struct DockRequest<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub province: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub idem_key: Option<&'a str>,
    pub body: &'a [u8],
}

/// A verified caller: a docked province's system.
#[derive(Debug, Clone)]
pub struct DockCaller {
    pub province: String,
    pub province_name: String,
    /// The machine account (`dock:PROVINCE`) its actions are recorded under.
    pub user_id: i64,
}

/// What a POST's idempotency key says about the request.
#[derive(Debug, Clone)]
pub enum Idem {
    /// First time: run it, then [`App::dock_idem_finish`].
    Fresh,
    /// A repeat: answer with the first answer.
    Replay { status: u16, body: String },
}

/// A docked province as the national administrator sees it, with its feed's backlog.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DockedProvinceOut {
    pub province: String,
    pub name: String,
    /// Base64 of the system's Ed25519 public key (32 bytes).
    pub public_key: String,
    pub docked_at: DateTime<Utc>,
    /// Number of the last event written to its feed.
    pub last_seq: i64,
    /// Every event up to this number has been acknowledged.
    pub acked_through: i64,
    /// Events written and not yet acknowledged.
    pub backlog: i64,
    /// When the oldest unacknowledged event was written.
    pub oldest_unacked_at: Option<DateTime<Utc>>,
    /// Last time its system read the feed.
    pub last_fetch_at: Option<DateTime<Utc>>,
    /// Last accepted request of any kind.
    pub last_contact_at: Option<DateTime<Utc>>,
    /// Alert: the system has not read its feed for longer than `XUEJI_DOCK_ALERT_MINUTES`
    /// (default 10) while events wait, or has never read it.
    pub fetch_overdue: bool,
}

/// Hours a replaced key stays valid beside the new one (`XUEJI_DOCK_KEY_OVERLAP_HOURS`, default
/// 24; 0 replaces at once).
pub fn key_overlap_hours() -> i64 {
    std::env::var("XUEJI_DOCK_KEY_OVERLAP_HOURS")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|h| (0..=24 * 30).contains(h))
        .unwrap_or(24)
}

/// The message log is evidence: it is kept at least this many days.
pub const MIN_MESSAGE_KEEP_DAYS: i64 = 180;

/// Minutes without a feed read after which a docked province is flagged (`XUEJI_DOCK_ALERT_MINUTES`).
pub fn alert_minutes() -> i64 {
    std::env::var("XUEJI_DOCK_ALERT_MINUTES")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(10)
}

/// Registers (or re-keys) a docked province.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DockProvinceIn {
    /// Base64 of the system's Ed25519 public key (32 bytes).
    pub public_key: String,
}

/// One event of a province's feed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DockEvent {
    /// The event's number in the province's feed: strictly increasing, no gaps.
    pub seq: i64,
    pub transfer_id: i64,
    /// `filed`, `decided`, `withdrawn`, `file_pulled`, `paper_sent`, `paper_received`, `closed`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// The transfer after the change (status, version, waiting step, `your_turn`, …).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A page of the feed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DockFeed {
    pub events: Vec<DockEvent>,
    /// Pass as `after` for the next page (the last event's `seq`, or `after` when empty).
    pub next_after: i64,
    /// Whether more events follow right away.
    pub more: bool,
    pub acked_through: i64,
}

/// Acknowledges every event up to `through`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DockAckIn {
    pub through: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DockAckOut {
    pub acked_through: i64,
    pub last_seq: i64,
}

/// An action by the docked province's system on one transfer.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DockDecisionIn {
    /// `approve`, `reject` (the waiting review step of one of its schools or authorities),
    /// `withdraw`, `pull_file`, `paper_received` (its receiving school), `paper_sent` (its
    /// sending school).
    pub decision: String,
    /// For `approve`/`reject`: the step word it decides (must be the waiting step, else
    /// `conflict`).
    pub step: Option<String>,
    /// 审核意见 (required to reject), withdrawal reason, or paper-file note.
    pub opinion: Option<String>,
    /// Paper file: 寄送方式.
    pub method: Option<String>,
    /// Who decided in the province's own system (shown in the transfer's detail).
    pub actor_name: String,
}

/// A filing by the docked province's system for a student coming into one of its schools.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DockFilingIn {
    /// The receiving school (in the caller's province).
    pub to_school: String,
    pub from_province: String,
    pub student_name: String,
    pub student_ref: String,
    pub to_grade: String,
    pub to_class_id: i64,
    pub reason: String,
    pub actor_name: String,
}

/// A document signed by the hub's key: verify `signature` over the UTF-8 bytes of `document`
/// (a JSON text) with `public_key`, then parse `document`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedDocument {
    /// `hub`.
    pub signer: String,
    /// Base64 Ed25519 public key of the hub (also at `GET /api/dock/v1/hub-key`).
    pub public_key: String,
    pub signed_at: DateTime<Utc>,
    /// The document, a JSON text (kept as text so that the signed bytes are exact).
    pub document: String,
    /// Base64 Ed25519 signature of `document`.
    pub signature: String,
}

/// One entry of the message log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DockMessageOut {
    pub id: i64,
    /// `received` or `sent`.
    pub direction: String,
    pub province: Option<String>,
    pub method: String,
    pub path: String,
    pub idem_key: Option<String>,
    /// The request's `X-Dock-Timestamp` as sent.
    pub signed_at: Option<String>,
    pub signature: Option<String>,
    pub body_sha256: String,
    /// HTTP status answered.
    pub status: i64,
    /// `ok`, `replayed`, or the refusal (`refused: …`).
    pub outcome: String,
    pub at: DateTime<Utc>,
}

/// The province (`XX0000`) of a region code.
fn province_of(region: &str) -> String {
    format!("{}0000", region.get(0..2).unwrap_or("00"))
}

/// The province of a step's party.
fn party_province(t: &TransferRow, s: &StepRow) -> String {
    if s.party_kind == "school" {
        if s.party_code == t.to_school {
            province_of(&t.to_region)
        } else {
            province_of(&t.from_region)
        }
    } else {
        province_of(&s.party_code)
    }
}

fn unauthenticated(msg: &str) -> Error {
    Error::new(ErrorCode::Unauthenticated, msg)
}

/// Whose action this is: the province of the party that takes it.
fn action_province(
    t: &TransferRow,
    steps: &[StepRow],
    action: &Action,
) -> Option<(String, Option<String>)> {
    match action {
        Action::Review { .. } => {
            let cur = steps.get(t.current_step as usize)?;
            let label = (cur.party_name.clone()).unwrap_or_else(|| cur.party_code.clone());
            Some((party_province(t, cur), Some(label)))
        }
        Action::Withdraw { .. } | Action::PullFile | Action::PaperReceived { .. } => {
            Some((province_of(&t.to_region), Some(t.to_school_name.clone())))
        }
        Action::PaperSent { .. } => Some((
            province_of(&t.from_region),
            Some(t.from_school_name.clone()),
        )),
    }
}

/// The machine accounts of docked provinces are named `dock:PROVINCE` and have no password.
pub fn is_dock_account(user: &CurrentUser) -> bool {
    user.username.starts_with("dock:")
}

fn event_kind(action: &str) -> &str {
    match action {
        "transfer.file" => "filed",
        "transfer.approve" | "transfer.auto_approve" | "transfer.reject" => "decided",
        "transfer.withdraw" => "withdrawn",
        "transfer.pull_file" => "file_pulled",
        "transfer.paper_sent" => "paper_sent",
        "transfer.paper_received" => "paper_received",
        other => other.strip_prefix("transfer.").unwrap_or(other),
    }
}

/// The last decided step: (step word, decision, opinion, actor name).
type LastDecision = (String, Option<String>, Option<String>, Option<String>);

/// Writes, in the change's transaction, one event per docked province the transfer concerns.
/// Called after the change (and its audit row) so the event shows the transfer as it now is.
pub(crate) async fn outbox(
    tx: &mut Tx,
    transfer_id: i64,
    action: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    #[derive(sqlx::FromRow)]
    struct T {
        status: String,
        version: i64,
        current_step: i64,
        kind: String,
        from_region: String,
        to_region: String,
        from_school: String,
        to_school: String,
        student_no: String,
        student_name: String,
        to_grade: String,
    }
    let t: T = on_tx!(tx, c => sqlx::query_as(
        "SELECT status, version, current_step, kind, from_region, to_region, from_school, to_school, \
         student_no, student_name, to_grade FROM transfers WHERE id = $1"
    ).bind(transfer_id).fetch_one(&mut *c).await)?;
    let mut provinces = vec![province_of(&t.from_region), province_of(&t.to_region)];
    provinces.sort();
    provinces.dedup();
    let docked: Vec<String> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT province FROM docked_provinces WHERE province = $1 OR province = $2 ORDER BY province"
    ).bind(&provinces[0]).bind(provinces.last()).fetch_all(&mut *c).await)?;
    if docked.is_empty() {
        return Ok(());
    }
    let status = TransferStatus::parse(&t.status);
    let waiting: Option<(String, String, String)> = if status.is_some_and(|s| s.is_review()) {
        on_tx!(tx, c => sqlx::query_as(
            "SELECT code, party_kind, party_code FROM transfer_steps WHERE transfer_id = $1 AND idx = $2"
        ).bind(transfer_id).bind(t.current_step).fetch_optional(&mut *c).await)?
    } else {
        None
    };
    let last: Option<LastDecision> = on_tx!(tx, c => sqlx::query_as(
        "SELECT code, decision, opinion, actor_name FROM transfer_steps WHERE transfer_id = $1 AND decision IS NOT NULL \
         ORDER BY decided_at DESC, idx DESC LIMIT 1"
    ).bind(transfer_id).fetch_optional(&mut *c).await)?;
    let from_p = province_of(&t.from_region);
    let to_p = province_of(&t.to_region);
    for p in docked {
        let seq: i64 = on_tx!(tx, c => sqlx::query_scalar(
            "UPDATE docked_provinces SET last_seq = last_seq + 1 WHERE province = $1 RETURNING last_seq"
        ).bind(&p).fetch_one(&mut *c).await)?;
        let waiting_province = waiting.as_ref().map(|(_, kind, code)| {
            if kind == "school" {
                if *code == t.to_school {
                    to_p.clone()
                } else {
                    from_p.clone()
                }
            } else {
                province_of(code)
            }
        });
        // What this province's system is expected to do next, if anything.
        let your_turn = match t.status.as_str() {
            "approved" | "paper_sent" => to_p == p,
            "file_pulled" => from_p == p,
            _ => waiting_province.as_deref() == Some(p.as_str()),
        };
        let data = serde_json::json!({
            "transfer_id": transfer_id,
            "action": action,
            "kind": t.kind,
            "status": t.status,
            "version": t.version,
            "student_no": t.student_no,
            "student_name": t.student_name,
            "from_school": t.from_school,
            "to_school": t.to_school,
            "from_province": from_p,
            "to_province": to_p,
            "to_grade": t.to_grade,
            "waiting": waiting.as_ref().map(|(code, kind, party)| serde_json::json!({
                "step": code, "party_type": kind, "party": party,
            })),
            "last_decision": last.as_ref().map(|(code, d, o, a)| serde_json::json!({
                "step": code, "decision": d, "opinion": o, "actor_name": a,
            })),
            "your_turn": your_turn,
        });
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO dock_events (province, seq, transfer_id, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
        ).bind(&p).bind(seq).bind(transfer_id).bind(event_kind(action)).bind(data.to_string()).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}

impl App {
    fn require_national(user: &CurrentUser) -> AppResult<()> {
        if user.role != Role::NationalAdmin {
            return Err(Error::forbidden("对接省份由全国学籍管理员管理").into());
        }
        Ok(())
    }

    async fn province_name_of(&self, province: &str) -> AppResult<Option<String>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT name FROM regions WHERE code = $1 AND level = 'province'"
        ).bind(province).fetch_optional(p).await)?)
    }

    /// Refuses a person's action on a step that a docked province's system takes.
    pub(crate) async fn refuse_docked(
        &self,
        user: &CurrentUser,
        t: &TransferRow,
        steps: &[StepRow],
        action: &Action,
    ) -> AppResult<()> {
        if is_dock_account(user) {
            return Ok(());
        }
        let Some((province, party)) = action_province(t, steps, action) else {
            return Ok(());
        };
        self.refuse_if_docked(&province, party.as_deref()).await
    }

    /// Refuses a person's filing into a school of a docked province.
    pub(crate) async fn refuse_docked_filing(
        &self,
        user: &CurrentUser,
        to_region: &str,
    ) -> AppResult<()> {
        if is_dock_account(user) {
            return Ok(());
        }
        self.refuse_if_docked(&province_of(to_region), None).await
    }

    async fn refuse_if_docked(&self, province: &str, party: Option<&str>) -> AppResult<()> {
        let name: Option<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT r.name FROM docked_provinces d JOIN regions r ON r.code = d.province WHERE d.province = $1"
        ).bind(province).fetch_optional(p).await)?;
        match name {
            None => Ok(()),
            Some(name) => {
                let who = party.map(|p| format!("（{p}）")).unwrap_or_default();
                Err(Error::new(
                    ErrorCode::DockedParty,
                    format!(
                        "{name}已对接本系统：该环节{who}由{name}学籍系统通过对接接口办理，请在{name}学籍系统中操作"
                    ),
                )
                .into())
            }
        }
    }

    /// Marks each step (and the detail) with the docked system that acts for it.
    pub(crate) async fn dock_annotate(&self, d: &mut TransferDetail) -> AppResult<()> {
        let docked: Vec<(String, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT d.province, r.name FROM docked_provinces d JOIN regions r ON r.code = d.province \
             WHERE d.province = $1 OR d.province = $2"
        ).bind(&d.from_province).bind(&d.to_province).fetch_all(p).await)?;
        if docked.is_empty() {
            return Ok(());
        }
        let system = |prov: &str| {
            docked
                .iter()
                .find(|(p, _)| p == prov)
                .map(|(_, n)| format!("{n}学籍系统（对接）"))
        };
        for s in &mut d.steps {
            let prov = if s.party_type == "school" {
                if s.party == d.to_school {
                    d.to_province.clone()
                } else {
                    d.from_province.clone()
                }
            } else {
                province_of(&s.party)
            };
            s.docked_system = system(&prov);
        }
        d.receiving_system = system(&d.to_province);
        d.sending_system = system(&d.from_province);
        Ok(())
    }

    // ----- administration (national administrator) -----

    /// The docked provinces with their feeds' backlog and last contact.
    pub async fn docked_provinces(&self, user: &CurrentUser) -> AppResult<Vec<DockedProvinceOut>> {
        Self::require_national(user)?;
        self.docked_provinces_unchecked().await
    }

    async fn docked_provinces_unchecked(&self) -> AppResult<Vec<DockedProvinceOut>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            province: String,
            name: String,
            public_key: String,
            docked_at: DateTime<Utc>,
            last_seq: i64,
            acked_through: i64,
            last_fetch_at: Option<DateTime<Utc>>,
            last_contact_at: Option<DateTime<Utc>>,
            oldest: Option<DateTime<Utc>>,
        }
        let rows: Vec<Row> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT d.province, r.name, d.public_key, d.docked_at, d.last_seq, d.acked_through, d.last_fetch_at, \
             d.last_contact_at, (SELECT e.created_at FROM dock_events e WHERE e.province = d.province AND e.seq > d.acked_through \
             ORDER BY e.seq LIMIT 1) AS oldest \
             FROM docked_provinces d JOIN regions r ON r.code = d.province ORDER BY d.province"
        ).fetch_all(p).await)?;
        let now = self.clock.now();
        let limit = chrono::Duration::minutes(alert_minutes());
        Ok(rows
            .into_iter()
            .map(|r| DockedProvinceOut {
                fetch_overdue: r.last_seq > r.acked_through
                    && r.last_fetch_at.unwrap_or(r.docked_at) + limit < now,
                backlog: r.last_seq - r.acked_through,
                province: r.province,
                name: r.name,
                public_key: r.public_key,
                docked_at: r.docked_at,
                last_seq: r.last_seq,
                acked_through: r.acked_through,
                oldest_unacked_at: r.oldest,
                last_fetch_at: r.last_fetch_at,
                last_contact_at: r.last_contact_at,
            })
            .collect())
    }

    /// Docks a province (or replaces its key): audited. Its machine account is created once.
    pub async fn dock_province(
        &self,
        user: &CurrentUser,
        province: &str,
        input: &DockProvinceIn,
    ) -> AppResult<DockedProvinceOut> {
        Self::require_national(user)?;
        let province = province.trim();
        let Some(name) = self.province_name_of(province).await? else {
            return Err(Error::not_found("该省级行政区").into());
        };
        let key = input.public_key.trim();
        if public_from_b64(key).is_none() {
            return Err(Error::validation(
                "public_key",
                "公钥应为 Ed25519 公钥（32字节）的 Base64 编码",
            )
            .into());
        }
        let now = self.clock.now();
        let username = format!("dock:{province}");
        let mut tx = self.db.begin().await?;
        let before: Option<String> = on_tx!(&mut tx, c => sqlx::query_scalar(
            "SELECT public_key FROM docked_provinces WHERE province = $1"
        ).bind(province).fetch_optional(&mut *c).await)?;
        // Key rotation: the replaced key stays valid for the overlap window, so that the
        // province's system can switch to its new key without a refused request in between.
        let overlap_until = before
            .as_deref()
            .filter(|old| old.trim() != key)
            .map(|_| now + chrono::Duration::hours(key_overlap_hours()));
        on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO users (username, password_hash, display_name, role, authority_region, created_at) \
             VALUES ($1, '!', $2, 'authority_admin', $3, $4) ON CONFLICT (username) DO NOTHING"
        ).bind(&username).bind(format!("{name}学籍系统（对接）")).bind(province).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        let user_id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(&username).fetch_one(&mut *c).await)?;
        on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO docked_provinces (province, public_key, user_id, docked_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (province) DO UPDATE SET public_key = $2"
        ).bind(province).bind(key).bind(user_id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if let Some(until) = overlap_until {
            on_tx!(&mut tx, c => sqlx::query(
                "UPDATE docked_provinces SET previous_key = $1, previous_key_until = $2 WHERE province = $3"
            ).bind(before.as_deref()).bind(until).bind(province).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "dock.province",
                entity_type: "docked_province",
                entity_id: province.to_string(),
                before: before.map(|k| serde_json::json!({ "public_key": k })),
                after: Some(serde_json::json!({
                    "public_key": key,
                    "previous_key_valid_until": overlap_until,
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.docked_provinces_unchecked()
            .await?
            .into_iter()
            .find(|p| p.province == province)
            .ok_or_else(|| Error::not_found("该对接省份").into())
    }

    /// The docked provinces whose systems have stopped reading their feeds (for the alert).
    pub async fn dock_overdue(&self) -> AppResult<Vec<DockedProvinceOut>> {
        Ok(self
            .docked_provinces_unchecked()
            .await?
            .into_iter()
            .filter(|p| p.fetch_overdue)
            .collect())
    }

    /// The message log, newest first, optionally of one province.
    pub async fn dock_messages(
        &self,
        user: &CurrentUser,
        province: Option<&str>,
        page: Page,
    ) -> AppResult<Paged<DockMessageOut>> {
        Self::require_national(user)?;
        let province = province.map(str::trim).filter(|p| !p.is_empty());
        let total: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM dock_messages WHERE ($1 IS NULL OR province = $1)"
        ).bind(province).fetch_one(p).await)?;
        let items: Vec<DockMessageOut> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, direction, province, method, path, idem_key, signed_at, signature, body_sha256, status, outcome, at \
             FROM dock_messages WHERE ($1 IS NULL OR province = $1) ORDER BY id DESC LIMIT $2 OFFSET $3"
        ).bind(province).bind(page.per_page).bind(page.offset()).fetch_all(p).await)?;
        Ok(Paged { items, total })
    }

    /// Removes message-log entries older than `keep_days` (at least [`MIN_MESSAGE_KEEP_DAYS`]);
    /// the pruning is audited with the number removed. Returns that number.
    pub async fn dock_prune_messages(&self, keep_days: i64) -> AppResult<u64> {
        if keep_days < MIN_MESSAGE_KEEP_DAYS {
            return Err(Error::validation(
                "keep_days",
                format!("对接报文日志至少保存{MIN_MESSAGE_KEEP_DAYS}天"),
            )
            .into());
        }
        let now = self.clock.now();
        let cutoff = now - chrono::Duration::days(keep_days);
        let mut tx = self.db.begin().await?;
        let removed = on_tx!(&mut tx, c => sqlx::query("DELETE FROM dock_messages WHERE at < $1")
            .bind(cutoff).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if removed == 0 {
            return Ok(0);
        }
        audit::record(
            &mut tx,
            now,
            &AuditActor::system("dock-prune"),
            AuditEvent {
                action: "dock.messages_prune",
                entity_type: "dock_messages",
                entity_id: cutoff.to_rfc3339(),
                before: None,
                after: Some(serde_json::json!({ "removed": removed, "keep_days": keep_days })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    // ----- the hub's key -----

    /// The hub's signing key, generated and stored on first use. It lives in the database
    /// (`dock_hub_key`), so that a backup carries it and every server process of one hub signs
    /// with the same key.
    pub async fn dock_hub_key(&self) -> AppResult<SigningKey> {
        let found: Option<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT secret_key FROM dock_hub_key WHERE id = 1"
        ).fetch_optional(p).await)?;
        if let Some(s) = found.as_deref().and_then(key_from_secret_b64) {
            return Ok(s);
        }
        let key = new_key();
        on_pool!(self.db.write(), p => sqlx::query(
            "INSERT INTO dock_hub_key (id, secret_key, public_key, created_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING"
        ).bind(secret_b64(&key)).bind(public_b64(&key)).bind(self.clock.now()).execute(p).await.map(|r| r.rows_affected()))?;
        // Another process may have won the race: use what is stored.
        let stored: String = on_pool!(self.db.write(), p => sqlx::query_scalar(
            "SELECT secret_key FROM dock_hub_key WHERE id = 1"
        ).fetch_one(p).await)?;
        key_from_secret_b64(&stored)
            .ok_or_else(|| crate::AppError::Other("dock_hub_key holds no valid key".into()))
    }

    // ----- the machine interface -----

    /// Checks a request's signature; a refusal is logged and answered 401.
    pub async fn dock_verify(&self, req: &DockRequest<'_>) -> AppResult<DockCaller> {
        match self.dock_verify_inner(req).await {
            Ok(c) => Ok(c),
            Err(e) => {
                let reason = e.message.clone();
                tracing::warn!(province = ?req.province, path = req.path_and_query, %reason, "dock request refused");
                self.dock_log(req, "received", 401, &format!("refused: {reason}"))
                    .await?;
                Err(e.into())
            }
        }
    }

    async fn dock_verify_inner(&self, req: &DockRequest<'_>) -> Result<DockCaller, Error> {
        let (Some(province), Some(ts), Some(sig)) = (req.province, req.timestamp, req.signature)
        else {
            return Err(unauthenticated(
                "缺少签名头：X-Dock-Province、X-Dock-Timestamp、X-Dock-Signature",
            ));
        };
        let Ok(ts_n) = ts.trim().parse::<i64>() else {
            return Err(unauthenticated("X-Dock-Timestamp 应为 Unix 秒数"));
        };
        let now = self.clock.now().timestamp();
        if (now - ts_n).abs() > CLOCK_WINDOW_SECS {
            return Err(unauthenticated(&format!(
                "请求时间戳超出允许范围（与服务器时间相差超过{}分钟），请校准时钟后用新的时间戳重新签名",
                CLOCK_WINDOW_SECS / 60
            )));
        }
        type KeyRow = (String, i64, String, Option<String>, Option<DateTime<Utc>>);
        let row: Option<KeyRow> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT d.public_key, d.user_id, r.name, d.previous_key, d.previous_key_until \
             FROM docked_provinces d JOIN regions r ON r.code = d.province WHERE d.province = $1"
        ).bind(province).fetch_optional(p).await)
        .map_err(|e| Error::new(ErrorCode::Internal, e.to_string()))?;
        let Some((key, user_id, name, previous, until)) = row else {
            return Err(unauthenticated("未对接的省份或未登记的密钥"));
        };
        // Within the overlap window after a rotation, the replaced key is accepted too.
        let previous = previous.filter(|_| until.is_some_and(|u| self.clock.now() < u));
        let base = base_string(
            req.method,
            req.path_and_query,
            ts,
            province,
            req.idem_key.unwrap_or(""),
            req.body,
        );
        if !verify_text(&key, &base, sig) {
            if !previous.is_some_and(|k| verify_text(&k, &base, sig)) {
                return Err(unauthenticated("签名无效"));
            }
            tracing::info!(
                province,
                "dock request signed with the replaced key (overlap window)"
            );
        }
        Ok(DockCaller {
            province: province.to_string(),
            province_name: name,
            user_id,
        })
    }

    /// One row of the message log. Accepted requests also mark the province's last contact.
    pub async fn dock_log(
        &self,
        req: &DockRequest<'_>,
        direction: &str,
        status: u16,
        outcome: &str,
    ) -> AppResult<()> {
        let now = self.clock.now();
        let province = req.province.map(|p| p.chars().take(12).collect::<String>());
        let clip = |s: Option<&str>| s.map(|v| v.chars().take(200).collect::<String>());
        on_pool!(self.db.write(), p => sqlx::query(
            "INSERT INTO dock_messages (direction, province, method, path, idem_key, signed_at, signature, body_sha256, status, outcome, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ).bind(direction).bind(&province).bind(req.method).bind(req.path_and_query.chars().take(500).collect::<String>())
        .bind(clip(req.idem_key)).bind(clip(req.timestamp)).bind(clip(req.signature))
        .bind(body_sha256_hex(req.body)).bind(i64::from(status)).bind(outcome.chars().take(500).collect::<String>()).bind(now)
        .execute(p).await.map(|r| r.rows_affected()))?;
        if status < 400 || outcome == "replayed" {
            on_pool!(self.db.write(), p => sqlx::query(
                "UPDATE docked_provinces SET last_contact_at = $1 WHERE province = $2"
            ).bind(now).bind(&province).execute(p).await.map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// Looks up a POST's idempotency key: a repeat gets the first answer back.
    pub async fn dock_idem_begin(
        &self,
        caller: &DockCaller,
        req: &DockRequest<'_>,
    ) -> AppResult<Idem> {
        let Some(key) = req.idem_key.map(str::trim).filter(|k| !k.is_empty()) else {
            return Err(Error::validation(
                "Idempotency-Key",
                "每个 POST 请求须带 Idempotency-Key 头",
            )
            .into());
        };
        if key.len() > MAX_IDEM_KEY {
            return Err(
                Error::validation("Idempotency-Key", "Idempotency-Key 不超过128个字符").into(),
            );
        }
        let hash = body_sha256_hex(
            format!("{} {}\n", req.method, req.path_and_query)
                .as_bytes()
                .iter()
                .chain(req.body)
                .copied()
                .collect::<Vec<u8>>()
                .as_slice(),
        );
        let now = self.clock.now();
        let inserted: Option<String> = on_pool!(self.db.write(), p => sqlx::query_scalar(
            "INSERT INTO dock_idempotency (province, idem_key, request_sha256, state, created_at) VALUES ($1, $2, $3, 'pending', $4) \
             ON CONFLICT (province, idem_key) DO NOTHING RETURNING state"
        ).bind(&caller.province).bind(key).bind(&hash).bind(now).fetch_optional(p).await)?;
        if inserted.is_some() {
            return Ok(Idem::Fresh);
        }
        let (req_hash, state, status, response, created_at): (
            String,
            String,
            Option<i64>,
            Option<String>,
            DateTime<Utc>,
        ) = on_pool!(self.db.write(), p => sqlx::query_as(
                "SELECT request_sha256, state, status, response, created_at FROM dock_idempotency WHERE province = $1 AND idem_key = $2"
            ).bind(&caller.province).bind(key).fetch_one(p).await)?;
        if req_hash != hash {
            return Err(Error::validation(
                "Idempotency-Key",
                "该 Idempotency-Key 已用于另一个请求：新的消息须使用新的键",
            )
            .into());
        }
        if state == "done" {
            return Ok(Idem::Replay {
                status: status.unwrap_or(200) as u16,
                body: response.unwrap_or_default(),
            });
        }
        if now - created_at > chrono::Duration::seconds(PENDING_TAKEOVER_SECS) {
            let taken = on_pool!(self.db.write(), p => sqlx::query(
                "UPDATE dock_idempotency SET created_at = $1 WHERE province = $2 AND idem_key = $3 AND state = 'pending' AND created_at = $4"
            ).bind(now).bind(&caller.province).bind(key).bind(created_at).execute(p).await.map(|r| r.rows_affected()))?;
            if taken == 1 {
                return Ok(Idem::Fresh);
            }
        }
        Err(Error::new(
            ErrorCode::Conflict,
            "同一 Idempotency-Key 的请求正在处理，请稍后用同一键重试",
        )
        .into())
    }

    /// Stores the first answer of a POST; an internal error is not stored (the repeat runs again).
    pub async fn dock_idem_finish(
        &self,
        caller: &DockCaller,
        key: &str,
        status: u16,
        body: &str,
    ) -> AppResult<()> {
        if status >= 500 {
            on_pool!(self.db.write(), p => sqlx::query(
                "DELETE FROM dock_idempotency WHERE province = $1 AND idem_key = $2 AND state = 'pending'"
            ).bind(&caller.province).bind(key.trim()).execute(p).await.map(|r| r.rows_affected()))?;
            return Ok(());
        }
        on_pool!(self.db.write(), p => sqlx::query(
            "UPDATE dock_idempotency SET state = 'done', status = $1, response = $2 WHERE province = $3 AND idem_key = $4"
        ).bind(i64::from(status)).bind(body).bind(&caller.province).bind(key.trim()).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A national view for answering the machine (no 查询码).
    fn dock_view_user(caller: &DockCaller) -> CurrentUser {
        CurrentUser {
            id: caller.user_id,
            username: format!("dock:{}", caller.province),
            display_name: format!("{}学籍系统（对接）", caller.province_name),
            role: Role::NationalAdmin,
            org: OrgRef::National,
            org_name: format!("{}学籍系统", caller.province_name),
            school_id: None,
            region_code: None,
            must_change_password: false,
        }
    }

    /// The feed: events after `after` (default: the acknowledged position), in order.
    pub async fn dock_events(
        &self,
        caller: &DockCaller,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> AppResult<DockFeed> {
        let limit = limit.unwrap_or(100).clamp(1, 1000);
        let acked: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT acked_through FROM docked_provinces WHERE province = $1"
        ).bind(&caller.province).fetch_one(p).await)?;
        let after = after.unwrap_or(acked).max(0);
        let rows: Vec<(i64, i64, String, String, DateTime<Utc>)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT seq, transfer_id, kind, payload, created_at FROM dock_events WHERE province = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        ).bind(&caller.province).bind(after).bind(limit + 1).fetch_all(p).await)?;
        let more = rows.len() as i64 > limit;
        let events: Vec<DockEvent> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(seq, transfer_id, kind, payload, created_at)| DockEvent {
                seq,
                transfer_id,
                kind,
                created_at,
                data: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        on_pool!(self.db.write(), p => sqlx::query(
            "UPDATE docked_provinces SET last_fetch_at = $1 WHERE province = $2"
        ).bind(self.clock.now()).bind(&caller.province).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(DockFeed {
            next_after: events.last().map(|e| e.seq).unwrap_or(after),
            events,
            more,
            acked_through: acked,
        })
    }

    /// Acknowledges the feed up to `through` (never backwards, never beyond the last event).
    pub async fn dock_ack(&self, caller: &DockCaller, through: i64) -> AppResult<DockAckOut> {
        let last: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT last_seq FROM docked_provinces WHERE province = $1"
        ).bind(&caller.province).fetch_one(p).await)?;
        if through < 0 || through > last {
            return Err(Error::validation(
                "through",
                format!("确认位置应在 0 到 {last}（最后一个事件）之间"),
            )
            .into());
        }
        let (acked_through, last_seq): (i64, i64) = on_pool!(self.db.write(), p => sqlx::query_as(
            "UPDATE docked_provinces SET acked_through = CASE WHEN acked_through > $1 THEN acked_through ELSE $1 END \
             WHERE province = $2 RETURNING acked_through, last_seq"
        ).bind(through).bind(&caller.province).fetch_one(p).await)?;
        Ok(DockAckOut {
            acked_through,
            last_seq,
        })
    }

    /// Loads a transfer the caller's province takes part in (others: `not_found`).
    async fn dock_load(
        &self,
        caller: &DockCaller,
        id: i64,
    ) -> AppResult<(TransferRow, Vec<StepRow>)> {
        let Some((t, steps)) = self.load(id).await? else {
            return Err(Error::not_found("该转学申请").into());
        };
        if province_of(&t.from_region) != caller.province
            && province_of(&t.to_region) != caller.province
        {
            return Err(Error::not_found("该转学申请").into());
        }
        Ok((t, steps))
    }

    /// The transfer as the docked system sees it.
    pub async fn dock_transfer(&self, caller: &DockCaller, id: i64) -> AppResult<TransferDetail> {
        self.dock_load(caller, id).await?;
        self.transfer(&Self::dock_view_user(caller), id).await
    }

    /// A decision or school action by the docked system, for its own party only.
    pub async fn dock_decide(
        &self,
        caller: &DockCaller,
        id: i64,
        d: &DockDecisionIn,
    ) -> AppResult<TransferDetail> {
        let actor_name = d.actor_name.trim();
        if actor_name.is_empty() || actor_name.chars().count() > 50 {
            return Err(Error::validation("actor_name", "请填写办理人姓名（不超过50字）").into());
        }
        let (t, steps) = self.dock_load(caller, id).await?;
        let text = d.opinion.as_deref().unwrap_or("").trim().to_string();
        if text.chars().count() > 500 {
            return Err(Error::validation("opinion", "意见不超过500字").into());
        }
        let to_p = province_of(&t.to_region);
        let from_p = province_of(&t.from_region);
        // The same action again under another key — the first answer was lost when the hub
        // died between the change's commit and storing the answer, or a person queued it twice:
        // already done by this province's system, so the answer is the transfer as it is and
        // nothing changes (rather than a `conflict` for its own decision).
        let mine_p = |p: &str| p == caller.province;
        let done = match d.decision.as_str() {
            "approve" | "reject" => d.step.as_deref().is_some_and(|code| {
                steps.iter().any(|s| {
                    s.spec().code() == code
                        && s.decision.as_deref() == Some(d.decision.as_str())
                        && s.actor_user_id == Some(caller.user_id)
                })
            }),
            "pull_file" => {
                mine_p(&to_p)
                    && matches!(
                        t.status.as_str(),
                        "file_pulled" | "paper_sent" | "completed"
                    )
            }
            "paper_sent" => {
                mine_p(&from_p) && matches!(t.status.as_str(), "paper_sent" | "completed")
            }
            "paper_received" => mine_p(&to_p) && t.status == "completed",
            "withdraw" => mine_p(&to_p) && t.status == "withdrawn",
            _ => false,
        };
        if done {
            return self.transfer(&Self::dock_view_user(caller), id).await;
        }
        let school_actor = |code: &str| Actor {
            // 0: no person of the hub; the province's own system is the one that acts.
            user_id: 0,
            role: Role::SchoolAdmin,
            org: OrgRef::School(code.to_string()),
        };
        let mine = |p: &str, what: &str| -> AppResult<()> {
            if p == caller.province {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorCode::NotYourTurn,
                    format!("{what}不属于{}", caller.province_name),
                )
                .into())
            }
        };
        let (action, actor) = match d.decision.as_str() {
            "approve" | "reject" => {
                let status = TransferStatus::parse(&t.status);
                let cur = steps
                    .get(t.current_step as usize)
                    .filter(|_| status.is_some_and(|s| s.is_review()));
                let Some(cur) = cur else {
                    return Err(Error::conflict().into());
                };
                let spec = cur.spec();
                let prov = party_province(&t, cur);
                if prov != caller.province {
                    return Err(Error::new(
                        ErrorCode::NotYourTurn,
                        format!(
                            "当前{}，不是{}的环节",
                            spec.waiting_zh(),
                            caller.province_name
                        ),
                    )
                    .into());
                }
                if let Some(step) = d.step.as_deref()
                    && step != spec.code()
                {
                    return Err(Error::new(
                        ErrorCode::Conflict,
                        format!("该环节（{step}）已不是当前环节，当前为 {}", spec.code()),
                    )
                    .into());
                }
                let role = if spec.role == StepRole::SchoolReview {
                    Role::SchoolReviewer
                } else {
                    Role::AuthorityAdmin
                };
                (
                    Action::Review {
                        approve: d.decision == "approve",
                        opinion: text,
                    },
                    Actor {
                        user_id: 0,
                        role,
                        org: spec.party,
                    },
                )
            }
            "withdraw" => {
                mine(&to_p, "转入学校")?;
                (
                    Action::Withdraw { reason: text },
                    school_actor(&t.to_school),
                )
            }
            "pull_file" => {
                mine(&to_p, "转入学校")?;
                (Action::PullFile, school_actor(&t.to_school))
            }
            "paper_received" => {
                mine(&to_p, "转入学校")?;
                (
                    Action::PaperReceived { note: text },
                    school_actor(&t.to_school),
                )
            }
            "paper_sent" => {
                mine(&from_p, "转出学校")?;
                (
                    Action::PaperSent { note: text },
                    school_actor(&t.from_school),
                )
            }
            _ => {
                return Err(Error::validation(
                    "decision",
                    "decision 应为 approve、reject、withdraw、pull_file、paper_sent 或 paper_received",
                )
                .into());
            }
        };
        let who = Who {
            user_id: Some(caller.user_id),
            name: format!("{actor_name}（{}学籍系统）", caller.province_name),
            audit: AuditActor {
                user_id: Some(caller.user_id),
                name: format!("dock:{}", caller.province),
                org: format!("dock:{}", caller.province),
            },
            auto: false,
        };
        let method = d
            .method
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        self.apply_action(&t, &steps, &actor, &who, &action, method)
            .await?;
        self.transfer(&Self::dock_view_user(caller), id).await
    }

    /// Files an application for a student coming into one of the caller's schools.
    pub async fn dock_file(
        &self,
        caller: &DockCaller,
        f: &DockFilingIn,
    ) -> AppResult<TransferDetail> {
        let actor_name = f.actor_name.trim();
        if actor_name.is_empty() || actor_name.chars().count() > 50 {
            return Err(Error::validation("actor_name", "请填写办理人姓名（不超过50字）").into());
        }
        let school = self
            .school_unscoped(f.to_school.trim())
            .await?
            .filter(|s| province_of(&s.region) == caller.province)
            .ok_or_else(|| Error::not_found("该转入学校").at("to_school"))?;
        let user = CurrentUser {
            id: caller.user_id,
            username: format!("dock:{}", caller.province),
            display_name: format!("{actor_name}（{}学籍系统）", caller.province_name),
            role: Role::SchoolAdmin,
            org: OrgRef::School(school.code.clone()),
            org_name: school.name.clone(),
            school_id: Some(school.id),
            region_code: Some(school.region.clone()),
            must_change_password: false,
        };
        let req = NewTransfer {
            from_province: f.from_province.clone(),
            student_name: f.student_name.clone(),
            student_ref: f.student_ref.clone(),
            to_grade: f.to_grade.clone(),
            to_class_id: f.to_class_id,
            reason: f.reason.clone(),
        };
        let t = self.file_transfer(&user, &req, vec![]).await?;
        self.transfer(&Self::dock_view_user(caller), t.id).await
    }

    /// The student's electronic file (电子学籍档案) for the receiving province after approval,
    /// signed by the hub; the sending is logged.
    pub async fn dock_file_document(
        &self,
        caller: &DockCaller,
        id: i64,
        req: &DockRequest<'_>,
    ) -> AppResult<SignedDocument> {
        let (t, _) = self.dock_load(caller, id).await?;
        if province_of(&t.to_region) != caller.province {
            return Err(Error::forbidden("电子学籍档案只发给转入学校所在省份").into());
        }
        if !matches!(
            t.status.as_str(),
            "approved" | "file_pulled" | "paper_sent" | "completed"
        ) {
            return Err(
                Error::new(ErrorCode::Conflict, "四方审核完成后才能调取电子学籍档案").into(),
            );
        }
        let view = Self::dock_view_user(caller);
        let mut archive = self.student_archive(&view, &t.student_no).await?;
        // Once the file is pulled the receiving school holds the student, and its province's
        // system enrols them on its own roll: it gets the whole identity number (a person is
        // found by it, 一人一籍). Before the pull the document shows it masked.
        if matches!(
            t.status.as_str(),
            "file_pulled" | "paper_sent" | "completed"
        ) {
            let whole: String = on_pool!(self.db.read(), p => sqlx::query_scalar(
                "SELECT id_number FROM students WHERE id = $1"
            ).bind(t.student_id).fetch_one(p).await)?;
            archive.student.id_number = Some(whole);
        }
        let now = self.clock.now();
        let document = serde_json::json!({
            "type": "xueji.student_archive",
            "version": 1,
            "transfer_id": id,
            "transfer_status": t.status,
            "issued_at": now,
            "issued_to": caller.province,
            "archive": archive,
        })
        .to_string();
        let key = self.dock_hub_key().await?;
        let signature = sign_text(&key, &document);
        let sent = DockRequest {
            method: "GET",
            path_and_query: req.path_and_query,
            province: Some(&caller.province),
            timestamp: None,
            signature: Some(&signature),
            idem_key: None,
            body: document.as_bytes(),
        };
        self.dock_log(&sent, "sent", 200, "ok: signed student archive")
            .await?;
        Ok(SignedDocument {
            signer: "hub".into(),
            public_key: public_b64(&key),
            signed_at: now,
            document,
            signature,
        })
    }
}
