//! 跨省转学 / 省内转学: filing, the chain of reviews, withdrawal, the file pull (调档), the paper
//! file, and the lists every party works from.
//!
//! Every action loads the transfer, asks the pure state machine (`xueji_domain::transfer::decide`)
//! whether the caller may do it, and writes the transition, its audit row and its notifications
//! in one transaction guarded by the transfer's version (two simultaneous clicks: one wins, the
//! other gets `conflict`). The business lock (在办业务) is a row in `open_businesses`, whose
//! primary key refuses a second open business for the same student.

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use xueji_domain::access::{Actor, OrgRef, Role};
use xueji_domain::ids::{Grade, RegionCode, StudentRef};
use xueji_domain::policy::{FilingFacts, OverdueAction};
use xueji_domain::transfer::{
    self as machine, Action, Notice, Side, StepRole, StepSpec, TransferKind, TransferState,
    TransferStatus, Transition,
};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::{CurrentUser, Scope};
use crate::db::Tx;
use crate::error::{AppError, AppResult};
use crate::notifications::notify_all;
use crate::reference::SchoolOut;
use crate::{App, on_pool, on_tx};

/// Working days each review step may take (the Measures, Art. 14).
pub const STEP_DEADLINE_DAYS: u32 = 10;
/// A step is due soon when at most this many working days remain.
pub const DUE_SOON_DAYS: i64 = 2;
/// Largest evidence file (JPG/PNG/PDF).
pub const MAX_EVIDENCE_BYTES: usize = 2 * 1024 * 1024;
pub const MAX_EVIDENCE_FILES: usize = 5;

/// What the receiving school's administrator files (跨省转学申请 / 省内转学申请).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// The sending province, 6 digits (e.g. `410000`).
    pub from_province: String,
    pub student_name: String,
    /// Formal or temporary 学籍号, or an identity document number.
    pub student_ref: String,
    /// Target grade code (`11`–`33`).
    pub to_grade: String,
    /// Target class id (a class of the receiving school in that grade).
    pub to_class_id: i64,
    /// 转学理由.
    pub reason: String,
}

/// An evidence file (佐证材料) attached to an application.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// The content type of an accepted evidence file, by its leading bytes (not its name).
pub fn evidence_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepOut {
    /// Stable step word: `in_school`, `in_authority`, `out_school`, `out_authority`,
    /// `shared_authority`, or a leader step.
    pub step: String,
    /// The acting organisation: a school code or an authority's region code.
    pub party: String,
    /// `school` or `authority`.
    pub party_type: String,
    pub party_name: String,
    /// 转入学校 / 转入学籍主管部门 / …
    pub party_label: String,
    /// `approve`, `reject`, or null while undecided.
    pub decision: Option<String>,
    pub opinion: Option<String>,
    /// Username of who decided.
    pub actor: Option<String>,
    pub actor_name: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The day the step began (null if not reached).
    pub began_on: Option<NaiveDate>,
    /// Due date: 10 working days counting the day the step began.
    pub due_date: Option<NaiveDate>,
    /// `done`, `waiting` (the current step), `pending` (not reached) or `skipped` (flow ended).
    pub state: String,
    /// Working days past due (0 when not overdue).
    pub overdue_days: i64,
    /// Working days this step may take (by the policy of its side).
    pub deadline_days: i64,
    /// What happens when it is overdue: `flag`, `escalate` or `auto_approve`.
    pub overdue_action: String,
    /// After escalation: the authority above that may now act on the step.
    pub escalated_to: Option<String>,
    /// Decided by the system under the province's 逾期视为同意 rule.
    pub auto_decided: bool,
    /// 对接: the docked province's system that takes this step (people cannot), if any.
    pub docked_system: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvidenceOut {
    pub id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaperFileOut {
    /// One month after the pull.
    pub due_date: Option<NaiveDate>,
    pub sent_at: Option<DateTime<Utc>>,
    /// 寄送方式 (EMS, 专人送达, …).
    pub method: Option<String>,
    pub sent_note: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    pub received_note: Option<String>,
}

/// The full view of a transfer (明细).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransferDetail {
    pub id: i64,
    /// `cross_province` or `intra_province`.
    pub kind: String,
    pub status: String,
    pub status_label: String,
    pub student_no: String,
    pub student_name: String,
    pub from_school: String,
    pub from_school_name: String,
    pub to_school: String,
    pub to_school_name: String,
    pub from_authority: String,
    pub to_authority: String,
    pub from_province: String,
    pub to_province: String,
    pub from_grade: String,
    pub to_grade: String,
    pub to_class_id: i64,
    pub to_class_name: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The step waiting now (its `step` word), null once approval has ended.
    pub current_step: Option<String>,
    /// Due date of the waiting step.
    pub due_date: Option<NaiveDate>,
    pub steps: Vec<StepOut>,
    pub approved_at: Option<DateTime<Utc>>,
    pub pulled_at: Option<DateTime<Utc>>,
    pub paper_file: PaperFileOut,
    pub withdraw_reason: Option<String>,
    pub evidence: Vec<EvidenceOut>,
    /// Optimistic-concurrency version; changes with every action.
    pub version: i64,
    /// Policy versions the transfer was filed under (0 = national default).
    pub from_policy_version: i64,
    pub to_policy_version: i64,
    /// 查询码 for the parents; shown to the receiving school only.
    pub query_code: Option<String>,
    /// Why the province closed the case (status `closed`).
    pub closed_reason: Option<String>,
    /// 对接: the docked system acting for the receiving / sending school (withdrawal, 调档, paper
    /// file), if its province is docked.
    pub receiving_system: Option<String>,
    pub sending_system: Option<String>,
}

/// One row of a transfer list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransferSummary {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub status_label: String,
    pub student_no: String,
    pub student_name: String,
    pub from_school: String,
    pub from_school_name: String,
    pub to_school: String,
    pub to_school_name: String,
    pub to_grade: String,
    pub created_at: DateTime<Utc>,
    pub current_step: Option<String>,
    /// Who acts now, in Chinese (e.g. 待转出学校审核).
    pub waiting_label: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub overdue_days: i64,
    /// At most two working days left.
    pub due_soon: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TransferRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) student_id: i64,
    pub(crate) student_no: String,
    pub(crate) student_name: String,
    pub(crate) from_school_id: i64,
    pub(crate) to_school_id: i64,
    pub(crate) from_school: String,
    pub(crate) to_school: String,
    pub(crate) from_authority: String,
    pub(crate) to_authority: String,
    pub(crate) from_region: String,
    pub(crate) to_region: String,
    pub(crate) from_grade: String,
    pub(crate) to_grade: String,
    pub(crate) to_class_id: i64,
    pub(crate) reason: String,
    pub(crate) filed_by: i64,
    pub(crate) current_step: i64,
    pub(crate) version: i64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) approved_at: Option<DateTime<Utc>>,
    pub(crate) pulled_at: Option<DateTime<Utc>>,
    pub(crate) paper_due_date: Option<NaiveDate>,
    pub(crate) paper_sent_at: Option<DateTime<Utc>>,
    pub(crate) paper_method: Option<String>,
    pub(crate) paper_sent_note: Option<String>,
    pub(crate) paper_received_at: Option<DateTime<Utc>>,
    pub(crate) paper_received_note: Option<String>,
    pub(crate) withdraw_reason: Option<String>,
    pub(crate) from_policy_version: i64,
    pub(crate) to_policy_version: i64,
    pub(crate) query_code: Option<String>,
    pub(crate) closed_reason: Option<String>,
    pub(crate) from_school_name: String,
    pub(crate) to_school_name: String,
    pub(crate) to_class_name: String,
}

/// The detail's one read: the transfer columns repeat on every step row, ordered by step (one
/// row with null step columns if the chain is empty).
const LOAD_SQL: &str = "SELECT t.id, t.kind, t.status, t.student_id, t.student_no, t.student_name, \
    t.from_school_id, t.to_school_id, t.from_school, t.to_school, t.from_authority, t.to_authority, \
    t.from_region, t.to_region, t.from_grade, t.to_grade, t.to_class_id, t.reason, t.filed_by, t.current_step, \
    t.version, t.created_at, t.updated_at, t.approved_at, t.pulled_at, t.paper_due_date, t.paper_sent_at, \
    t.paper_method, t.paper_sent_note, t.paper_received_at, t.paper_received_note, t.withdraw_reason, \
    t.from_policy_version, t.to_policy_version, t.query_code, t.closed_reason, \
    fs.name AS from_school_name, ts.name AS to_school_name, c.name AS to_class_name, \
    (SELECT COUNT(*) FROM transfer_evidence e WHERE e.transfer_id = t.id) AS evidence_count, \
    (SELECT r.name FROM docked_provinces d JOIN regions r ON r.code = d.province \
     WHERE d.province = substr(t.from_region, 1, 2) || '0000') AS from_docked, \
    (SELECT r.name FROM docked_provinces d JOIN regions r ON r.code = d.province \
     WHERE d.province = substr(t.to_region, 1, 2) || '0000') AS to_docked, \
    st.idx, st.side, st.role, st.party_kind, st.party_code, st.shared, st.decision, st.opinion, \
    st.actor_user_id, u.username AS actor_username, st.actor_name, st.decided_at, st.began_on, st.due_date, \
    COALESCE(sc.name, a.name) AS party_name, st.deadline_days, st.overdue_action, st.escalated_to, st.auto_decided \
    FROM transfers t JOIN schools fs ON fs.id = t.from_school_id JOIN schools ts ON ts.id = t.to_school_id \
    JOIN classes c ON c.id = t.to_class_id \
    LEFT JOIN transfer_steps st ON st.transfer_id = t.id LEFT JOIN users u ON u.id = st.actor_user_id \
    LEFT JOIN schools sc ON st.party_kind = 'school' AND sc.code = st.party_code \
    LEFT JOIN authorities a ON st.party_kind = 'authority' AND a.region_code = st.party_code \
    WHERE t.id = $1 ORDER BY st.idx";

/// A review's decision and the start of the next step (`$8`, -1 for none) in one statement.
const DECIDE_SQL: &str = "UPDATE transfer_steps SET decision = CASE WHEN idx = $1 THEN $2 ELSE decision END, \
    opinion = CASE WHEN idx = $1 THEN $3 ELSE opinion END, \
    actor_user_id = CASE WHEN idx = $1 THEN $4 ELSE actor_user_id END, \
    actor_name = CASE WHEN idx = $1 THEN $5 ELSE actor_name END, \
    decided_at = CASE WHEN idx = $1 THEN $6 ELSE decided_at END, \
    auto_decided = CASE WHEN idx = $1 THEN $7 ELSE auto_decided END, \
    began_on = CASE WHEN idx = $8 THEN $9 ELSE began_on END, \
    due_date = CASE WHEN idx = $8 THEN $10 ELSE due_date END, \
    waiting = CASE WHEN idx = $8 THEN 1 ELSE NULL END \
    WHERE transfer_id = $11 AND ((idx = $1 AND decision IS NULL) OR idx = $8)";

/// A transfer withdrawn or closed before its review ended: its step waits no more.
pub(crate) const STOP_WAITING_SQL: &str =
    "UPDATE transfer_steps SET waiting = NULL WHERE transfer_id = $1 AND waiting = 1";

/// 调档 moves the student if the receiving class has room, in one statement.
const MOVE_STUDENT_SQL: &str = "UPDATE students SET school_id = $1, grade = $2, class_id = $3, region_code = $4, version = version + 1, \
    updated_at = $5 WHERE id = $6 AND school_id = $7 \
    AND (SELECT COUNT(*) FROM students s WHERE s.class_id = $3) < (SELECT capacity FROM classes WHERE id = $3)";

/// The statements every workflow step runs, for the test that checks their plans.
#[doc(hidden)]
pub mod hot_sql {
    pub const LOAD: &str = super::LOAD_SQL;
    pub const DECIDE: &str = super::DECIDE_SQL;
    pub const MOVE_STUDENT: &str = super::MOVE_STUDENT_SQL;
    /// The transition of a review that is not the last.
    pub fn review() -> &'static str {
        super::update_sql(
            &super::Action::Review {
                approve: true,
                opinion: String::new(),
            },
            false,
        )
    }
}

/// What [`LOAD_SQL`] reads besides the transfer and its steps.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct LoadExtra {
    pub(crate) evidence_count: i64,
    /// The names of the sending / receiving provinces if they are docked (对接).
    pub(crate) from_docked: Option<String>,
    pub(crate) to_docked: Option<String>,
}

/// A transfer as one action or one detail needs it.
pub(crate) struct Loaded {
    pub(crate) t: TransferRow,
    pub(crate) steps: Vec<StepRow>,
    pub(crate) extra: LoadExtra,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StepRow {
    pub(crate) idx: i64,
    pub(crate) side: String,
    pub(crate) role: String,
    pub(crate) party_kind: String,
    pub(crate) party_code: String,
    pub(crate) shared: bool,
    pub(crate) decision: Option<String>,
    pub(crate) opinion: Option<String>,
    pub(crate) actor_user_id: Option<i64>,
    pub(crate) actor_username: Option<String>,
    pub(crate) actor_name: Option<String>,
    pub(crate) decided_at: Option<DateTime<Utc>>,
    pub(crate) began_on: Option<NaiveDate>,
    pub(crate) due_date: Option<NaiveDate>,
    pub(crate) party_name: Option<String>,
    pub(crate) deadline_days: i64,
    pub(crate) overdue_action: String,
    pub(crate) escalated_to: Option<String>,
    pub(crate) auto_decided: bool,
}

fn side_str(s: Side) -> &'static str {
    match s {
        Side::In => "in",
        Side::Out => "out",
    }
}

fn role_str(r: StepRole) -> &'static str {
    match r {
        StepRole::SchoolReview => "school_review",
        StepRole::AuthorityReview => "authority_review",
        StepRole::LeaderConfirm => "leader_confirm",
    }
}

impl StepRow {
    pub(crate) fn spec(&self) -> StepSpec {
        StepSpec {
            side: if self.side == "in" {
                Side::In
            } else {
                Side::Out
            },
            party: if self.party_kind == "school" {
                OrgRef::School(self.party_code.clone())
            } else {
                OrgRef::Authority(self.party_code.clone())
            },
            role: match self.role.as_str() {
                "school_review" => StepRole::SchoolReview,
                "leader_confirm" => StepRole::LeaderConfirm,
                _ => StepRole::AuthorityReview,
            },
            shared: self.shared,
        }
    }
}

fn status_of(s: &str) -> TransferStatus {
    TransferStatus::parse(s).unwrap_or(TransferStatus::Rejected)
}

/// The organisation of a notice's addressee in Chinese wording of the event.
fn notice_text(notice: Notice, kind: TransferKind, t: &NoticeCtx) -> String {
    let who = format!("学生{}（{} → {}）", t.student_name, t.from_name, t.to_name);
    let k = kind.label_zh();
    match notice {
        Notice::StepWaiting => match &t.due {
            Some(d) => format!("{k}：{who}的转学申请待贵单位审核，请于{d}前办理。"),
            None => format!("{k}：{who}的转学申请待贵单位审核。"),
        },
        Notice::StepApproved => format!("{k}：{who}的转学申请已通过{}审核。", t.step_label),
        Notice::Approved => {
            format!("{k}：{who}的转学申请已完成四方核办，请通知学生到转入学校报到并办理调档。")
        }
        Notice::Rejected => format!(
            "{k}：{who}的转学申请未获同意（{}），流程已终止。",
            t.step_label
        ),
        Notice::Withdrawn => format!("{k}：{who}的转学申请已由转入学校撤销。"),
        Notice::FilePulled => {
            format!("{k}：转入学校已调取{who}的电子学籍档案，请按约定寄送纸质学籍档案。")
        }
        Notice::PaperSent => format!("{k}：转出学校已寄出{who}的纸质学籍档案，请注意接收。"),
        Notice::PaperReceived => format!("{k}：转入学校已接收{who}的纸质学籍档案，转学办理完毕。"),
    }
}

/// The transition's UPDATE for an action: `$1` status, `$2` current step, `$3` now, `$4` id,
/// `$5` the version read; then the action's own values. It returns whether a docked province
/// takes part (no row: the version moved on).
fn update_sql(action: &Action, approved: bool) -> &'static str {
    macro_rules! update {
        ($set:literal) => {
            concat!(
                "UPDATE transfers SET status = $1, current_step = $2, version = version + 1, updated_at = $3",
                $set,
                " WHERE id = $4 AND version = $5 RETURNING (SELECT COUNT(*) FROM docked_provinces d \
                 WHERE d.province = substr(transfers.from_region, 1, 2) || '0000' \
                 OR d.province = substr(transfers.to_region, 1, 2) || '0000')"
            )
        };
    }
    match action {
        // `waiting_due`: the due date of the step that begins, or none when review ends.
        Action::Review { .. } if approved => update!(", approved_at = $3, waiting_due = $6"),
        Action::Review { .. } => update!(", waiting_due = $6"),
        Action::Withdraw { .. } => update!(", withdraw_reason = $6, waiting_due = NULL"),
        Action::PullFile => update!(", pulled_at = $3, paper_due_date = $6"),
        Action::PaperSent { .. } => {
            update!(", paper_sent_at = $3, paper_method = $6, paper_sent_note = $7")
        }
        Action::PaperReceived { .. } => {
            update!(", paper_received_at = $3, paper_received_note = $6")
        }
    }
}

/// Who an action is recorded as: a user, or the system (逾期视为同意).
pub(crate) struct Who {
    pub user_id: Option<i64>,
    pub name: String,
    pub audit: AuditActor,
    pub auto: bool,
}

pub(crate) fn overdue_str(a: OverdueAction) -> &'static str {
    match a {
        OverdueAction::Flag => "flag",
        OverdueAction::Escalate => "escalate",
        OverdueAction::AutoApprove => "auto_approve",
    }
}

/// A 查询码: 10 characters without look-alikes (no 0/O, 1/I).
fn new_query_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

struct NoticeCtx {
    student_name: String,
    from_name: String,
    to_name: String,
    step_label: String,
    due: Option<NaiveDate>,
}

/// Filters of the transfer lists (审核 / 调档 / 查询).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct TransferFilter {
    /// A status word, e.g. `in_school_review`, `approved`.
    pub status: Option<String>,
    /// `cross_province` or `intra_province`.
    pub kind: Option<String>,
    /// Only those waiting for the caller's organisation to act.
    pub todo: Option<bool>,
    /// Student name prefix or exact student number.
    pub q: Option<String>,
    /// Filed on or after (YYYY-MM-DD).
    pub from_date: Option<NaiveDate>,
    /// Filed on or before (YYYY-MM-DD).
    pub to_date: Option<NaiveDate>,
    /// Only those whose current step is past its due date.
    pub overdue: Option<bool>,
    /// `in` (transfers into the caller's schools) or `out`.
    pub direction: Option<String>,
}

impl App {
    pub(crate) async fn load(&self, id: i64) -> AppResult<Option<(TransferRow, Vec<StepRow>)>> {
        Ok(self.load_full(id).await?.map(|l| (l.t, l.steps)))
    }

    /// The transfer, its steps, and what its answer needs besides (evidence count, docked
    /// provinces) in ONE query: a step is a round trip per statement, so this is the only read.
    pub(crate) async fn load_full(&self, id: i64) -> AppResult<Option<Loaded>> {
        use sqlx::{FromRow, Row};
        let loaded = on_pool!(self.db.read(), p => {
            let rows = sqlx::query(LOAD_SQL).bind(id).fetch_all(p).await?;
            match rows.first() {
                None => None,
                Some(first) => Some(Loaded {
                    t: TransferRow::from_row(first)?,
                    extra: LoadExtra::from_row(first)?,
                    steps: rows
                        .iter()
                        .filter(|r| matches!(r.try_get::<Option<i64>, _>("idx"), Ok(Some(_))))
                        .map(StepRow::from_row)
                        .collect::<Result<_, _>>()?,
                }),
            }
        });
        Ok(loaded)
    }

    /// Whether the caller may see a transfer: a party to it, an authority over either school, or
    /// the national administrator. Outsiders get `not_found`, never a hint that it exists.
    fn may_see(&self, user: &CurrentUser, t: &TransferRow, steps: &[StepRow]) -> bool {
        match user.scope() {
            Scope::National => true,
            Scope::School { id, .. } => id == t.from_school_id || id == t.to_school_id,
            Scope::Region(r) => {
                r.contains(&t.from_region)
                    || r.contains(&t.to_region)
                    || steps
                        .iter()
                        .any(|s| s.party_kind == "authority" && s.party_code == r.as_str())
            }
        }
    }

    pub(crate) fn state_of(t: &TransferRow, steps: &[StepRow]) -> TransferState {
        TransferState {
            status: status_of(&t.status),
            chain: steps.iter().map(StepRow::spec).collect(),
            current_step: t.current_step as usize,
            filed_by: t.filed_by,
            to_school: t.to_school.clone(),
            from_school: t.from_school.clone(),
        }
    }

    fn detail_of(
        &self,
        user: &CurrentUser,
        t: TransferRow,
        steps: Vec<StepRow>,
        evidence: Vec<EvidenceOut>,
    ) -> TransferDetail {
        let receiving = matches!(&user.org, OrgRef::School(c) if *c == t.to_school);
        let cal = self.calendar();
        let today = self.clock.today();
        let status = status_of(&t.status);
        let current = t.current_step as usize;
        let specs: Vec<StepSpec> = steps.iter().map(StepRow::spec).collect();
        let steps_out: Vec<StepOut> = steps
            .into_iter()
            .zip(specs.iter())
            .map(|(s, spec)| {
                let idx = s.idx as usize;
                let state = if s.decision.is_some() {
                    "done"
                } else if idx == current && status.is_review() {
                    "waiting"
                } else if status.is_review() || idx > current {
                    if status.is_review() {
                        "pending"
                    } else {
                        "skipped"
                    }
                } else {
                    "skipped"
                };
                let overdue_days = match (state, s.due_date) {
                    ("waiting", Some(d)) => cal.overdue_working_days(d, today),
                    _ => 0,
                };
                StepOut {
                    step: spec.code().to_string(),
                    party: s.party_code.clone(),
                    party_type: s.party_kind.clone(),
                    party_name: s.party_name.clone().unwrap_or_default(),
                    party_label: spec.party_label_zh().to_string(),
                    decision: s.decision,
                    opinion: s.opinion,
                    actor: s.actor_username,
                    actor_name: s.actor_name,
                    decided_at: s.decided_at,
                    began_on: s.began_on,
                    due_date: s.due_date,
                    state: state.to_string(),
                    overdue_days,
                    deadline_days: s.deadline_days,
                    overdue_action: s.overdue_action,
                    escalated_to: s.escalated_to,
                    auto_decided: s.auto_decided,
                    docked_system: None,
                }
            })
            .collect();
        let waiting = steps_out.iter().find(|s| s.state == "waiting");
        TransferDetail {
            id: t.id,
            kind: t.kind,
            status: t.status.clone(),
            status_label: status.label_zh().to_string(),
            student_no: t.student_no,
            student_name: t.student_name,
            from_school: t.from_school,
            from_school_name: t.from_school_name,
            to_school: t.to_school,
            to_school_name: t.to_school_name,
            from_authority: t.from_authority,
            to_authority: t.to_authority,
            from_province: format!("{}0000", &t.from_region[0..2]),
            to_province: format!("{}0000", &t.to_region[0..2]),
            from_grade: t.from_grade,
            to_grade: t.to_grade,
            to_class_id: t.to_class_id,
            to_class_name: t.to_class_name,
            reason: t.reason,
            created_at: t.created_at,
            updated_at: t.updated_at,
            current_step: waiting.map(|s| s.step.clone()),
            due_date: waiting.and_then(|s| s.due_date),
            steps: steps_out,
            approved_at: t.approved_at,
            pulled_at: t.pulled_at,
            paper_file: PaperFileOut {
                due_date: t.paper_due_date,
                sent_at: t.paper_sent_at,
                method: t.paper_method,
                sent_note: t.paper_sent_note,
                received_at: t.paper_received_at,
                received_note: t.paper_received_note,
            },
            withdraw_reason: t.withdraw_reason,
            evidence,
            version: t.version,
            from_policy_version: t.from_policy_version,
            to_policy_version: t.to_policy_version,
            query_code: if receiving { t.query_code } else { None },
            closed_reason: t.closed_reason,
            receiving_system: None,
            sending_system: None,
        }
    }

    /// The transfer's detail (明细), if the caller may see it.
    pub async fn transfer(&self, user: &CurrentUser, id: i64) -> AppResult<TransferDetail> {
        let Some(l) = self.load_full(id).await? else {
            return Err(Error::not_found("该转学申请").into());
        };
        if !self.may_see(user, &l.t, &l.steps) {
            return Err(Error::not_found("该转学申请").into());
        }
        self.answer(user, l).await
    }

    /// The detail of a loaded transfer; reads more only when it has evidence or a docked party.
    async fn answer(&self, user: &CurrentUser, l: Loaded) -> AppResult<TransferDetail> {
        let evidence = if l.extra.evidence_count > 0 {
            let rows: Vec<(i64, String, String, i64)> = on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT id, filename, content_type, size FROM transfer_evidence WHERE transfer_id = $1 ORDER BY id"
            ).bind(l.t.id).fetch_all(p).await)?;
            rows.into_iter()
                .map(|(id, filename, content_type, size)| EvidenceOut {
                    id,
                    filename,
                    content_type,
                    size,
                })
                .collect()
        } else {
            vec![]
        };
        let docked = l.extra.from_docked.is_some() || l.extra.to_docked.is_some();
        let mut detail = self.detail_of(user, l.t, l.steps, evidence);
        if docked {
            self.dock_annotate(&mut detail).await?;
        }
        Ok(detail)
    }

    /// An evidence file of a transfer the caller may see: (filename, content type, bytes).
    pub async fn transfer_evidence(
        &self,
        user: &CurrentUser,
        id: i64,
        evidence_id: i64,
    ) -> AppResult<(String, String, Vec<u8>)> {
        self.transfer(user, id).await?;
        let row: Option<(String, String, Vec<u8>)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT filename, content_type, data FROM transfer_evidence WHERE id = $1 AND transfer_id = $2"
        ).bind(evidence_id).bind(id).fetch_optional(p).await)?;
        row.ok_or_else(|| Error::not_found("该材料").into())
    }

    /// Files a transfer application (转学申请) for the caller's school.
    pub async fn file_transfer(
        &self,
        user: &CurrentUser,
        req: &NewTransfer,
        evidence: Vec<Evidence>,
    ) -> AppResult<TransferDetail> {
        let OrgRef::School(to_code) = &user.org else {
            return Err(Error::forbidden("转学申请须由转入学校的学籍管理员提交").into());
        };
        if user.role != Role::SchoolAdmin {
            return Err(Error::forbidden("转学申请须由转入学校的学籍管理员提交").into());
        }
        // Validate every field before looking anything up.
        let province = RegionCode::parse(&req.from_province).map_err(|_| {
            Error::validation(
                "from_province",
                "转出省份应为6位省级行政区划代码，如 410000",
            )
        })?;
        if province.province() != province {
            return Err(Error::validation(
                "from_province",
                "转出省份应为省级代码（末四位为0000），如 410000",
            )
            .into());
        }
        let name = req.student_name.trim();
        if name.is_empty() || name.chars().count() > 50 {
            return Err(Error::validation("student_name", "请填写学生姓名（不超过50字）").into());
        }
        let student_ref = StudentRef::parse(&req.student_ref)?;
        let grade = Grade::parse(&req.to_grade).map_err(|e| e.at("to_grade"))?;
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(Error::new(ErrorCode::ReasonRequired, "请填写转学理由")
                .at("reason")
                .into());
        }
        if reason.chars().count() > 500 {
            return Err(Error::validation("reason", "转学理由不超过500字").into());
        }
        if evidence.len() > MAX_EVIDENCE_FILES {
            return Err(Error::validation(
                "evidence",
                format!("佐证材料最多{MAX_EVIDENCE_FILES}个文件"),
            )
            .into());
        }
        let mut files = vec![];
        for f in evidence.into_iter().filter(|f| !f.bytes.is_empty()) {
            if f.bytes.len() > MAX_EVIDENCE_BYTES {
                return Err(Error::validation(
                    "evidence",
                    format!("材料“{}”超过2MB，请压缩后上传", f.filename),
                )
                .into());
            }
            let Some(ct) = evidence_type(&f.bytes) else {
                return Err(Error::validation(
                    "evidence",
                    format!("材料“{}”不是JPG、PNG或PDF文件", f.filename),
                )
                .into());
            };
            files.push((f, ct));
        }
        let province_known: Option<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT code FROM regions WHERE code = $1 AND level = 'province'"
        ).bind(province.as_str()).fetch_optional(p).await)?;
        if province_known.is_none() {
            return Err(Error::validation("from_province", "没有这个省级行政区划代码").into());
        }
        let to_school = self
            .school_unscoped(to_code)
            .await?
            .ok_or_else(|| Error::not_found("本校"))?;
        self.refuse_docked_filing(user, &to_school.region).await?;
        if !to_school.grades.contains(&grade.code()) {
            return Err(
                Error::validation("to_grade", format!("本校不设{}", grade.label_zh())).into(),
            );
        }
        let class: Option<(String, i64, i64)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT c.grade, c.capacity, (SELECT COUNT(*) FROM students s WHERE s.class_id = c.id) \
             FROM classes c WHERE c.id = $1 AND c.school_id = $2"
        ).bind(req.to_class_id).bind(to_school.id).fetch_optional(p).await)?;
        let Some((class_grade, capacity, enrolled)) = class else {
            return Err(
                Error::validation("to_class_id", "转入班级不是本校的班级，请重新选择").into(),
            );
        };
        if class_grade != grade.code() {
            return Err(
                Error::validation("to_class_id", "转入班级与转入年级不一致，请重新选择").into(),
            );
        }
        if enrolled >= capacity {
            return Err(Error::new(
                ErrorCode::ClassFull,
                format!("转入班级已满（{enrolled}/{capacity}人），请选择其他班级"),
            )
            .at("to_class_id")
            .into());
        }
        // Find the student in the sending province by the exact reference only.
        let (lo, hi) = province.subtree_range();
        #[derive(sqlx::FromRow)]
        struct Found {
            id: i64,
            student_no: String,
            name: String,
            status: String,
            school_id: Option<i64>,
            school_code: Option<String>,
            grade: Option<String>,
            class_id: Option<i64>,
        }
        let base = "SELECT s.id, s.student_no, s.name, s.status, s.school_id, sc.code AS school_code, s.grade, s.class_id \
                    FROM students s LEFT JOIN schools sc ON sc.id = s.school_id WHERE s.region_code >= $1 AND s.region_code < $2 AND ";
        let found: Option<Found> = match &student_ref {
            StudentRef::StudentNo(no) => {
                let sql = format!(
                    "{base} s.id = (SELECT student_id FROM student_numbers WHERE student_no = $3)"
                );
                on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(&lo).bind(&hi).bind(no.as_str()).fetch_optional(p).await)?
            }
            StudentRef::IdNumber(id) => {
                let sql = format!("{base} s.id_type = '1' AND s.id_number = $3");
                on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(&lo).bind(&hi).bind(id.as_str()).fetch_optional(p).await)?
            }
            StudentRef::Document(doc) => {
                let sql = format!("{base} s.id_type <> '1' AND s.id_number = $3");
                on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(&lo).bind(&hi).bind(doc.as_str()).fetch_optional(p).await)?
            }
        };
        let not_found = || {
            Error::new(
                ErrorCode::NotFound,
                "在所选转出省份未找到该在籍学生，请核对转出省份和学籍号（或身份证件号码）",
            )
            .at("student_ref")
        };
        let Some(st) = found else {
            return Err(not_found().into());
        };
        let (Some(from_school_id), Some(from_code), Some(from_grade)) =
            (st.school_id, st.school_code.clone(), st.grade.clone())
        else {
            return Err(not_found().into());
        };
        if st.name != name {
            return Err(Error::new(
                ErrorCode::NameMismatch,
                "学生姓名与学籍信息不一致，请核对后重新填写",
            )
            .at("student_name")
            .into());
        }
        if !matches!(st.status.as_str(), "enrolled" | "suspended") {
            return Err(not_found().into());
        }
        if from_school_id == to_school.id {
            return Err(Error::validation("student_ref", "该学生已在本校就读，无需转学").into());
        }
        let from_school = self
            .school_unscoped(&from_code)
            .await?
            .ok_or_else(not_found)?;
        let kind = TransferKind::between(&from_school.region, &to_school.region);
        let now = self.clock.now();
        let today = self.clock.today();
        // Each province's rules apply to its own side (Art. 11).
        let from_province = format!("{}0000", &from_school.region[0..2]);
        let to_province = format!("{}0000", &to_school.region[0..2]);
        let (from_version, from_policy) = self.current_policy(&from_province).await?;
        let (to_version, to_policy) = self.current_policy(&to_province).await?;
        let facts = FilingFacts {
            date: today,
            kind,
            from_grade: Grade::parse(&from_grade)?,
            to_grade: grade,
            suspended: st.status == "suspended",
            sanctioned: from_policy.refuse_sanctioned && self.sanctioned_on(st.id, today).await?,
            reason,
            evidence_files: files.len() as u32,
        };
        to_policy.check_filing(Side::In, &self.province_name(&to_province).await?, &facts)?;
        from_policy.check_filing(
            Side::Out,
            &self.province_name(&from_province).await?,
            &facts,
        )?;
        let to_line = self
            .authority_line(&to_school.code, &to_school.region, &to_school.authority)
            .await?;
        let from_line = self
            .authority_line(
                &from_school.code,
                &from_school.region,
                &from_school.authority,
            )
            .await?;
        let chain = xueji_domain::policy::chain(&to_line, &to_policy, &from_line, &from_policy);
        let (state, notices) =
            machine::new_transfer(chain, user.id, &from_school.code, &to_school.code);
        let due = self.calendar().due_date(today, to_policy.deadline_days);
        let query_code = new_query_code();

        let mut tx = self.db.begin().await?;
        // The new row's id, and whether a docked province takes part (only then has the outbox work).
        let (id, docked): (i64, i64) = on_tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO transfers (kind, status, student_id, student_no, student_name, from_school_id, to_school_id, \
             from_school, to_school, from_authority, to_authority, from_region, to_region, from_grade, from_class_id, \
             to_grade, to_class_id, reason, filed_by, current_step, version, created_at, updated_at, \
             from_policy_version, to_policy_version, query_code, waiting_due) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 0, 0, $20, $20, $21, $22, $23, $26) \
             RETURNING id, (SELECT COUNT(*) FROM docked_provinces d WHERE d.province = $24 OR d.province = $25)"
        )
        .bind(kind.as_str()).bind(state.status.as_str()).bind(st.id).bind(&st.student_no).bind(&st.name)
        .bind(from_school.id).bind(to_school.id).bind(&from_school.code).bind(&to_school.code)
        .bind(&from_school.authority).bind(&to_school.authority).bind(&from_school.region).bind(&to_school.region)
        .bind(&from_grade).bind(st.class_id).bind(grade.code()).bind(req.to_class_id).bind(reason).bind(user.id).bind(now)
        .bind(from_version).bind(to_version).bind(&query_code).bind(&from_province).bind(&to_province)
        .bind((!state.chain.is_empty()).then_some(due))
        .fetch_one(&mut *c).await)?;
        // The business lock: the primary key refuses a second open business for this student.
        let locked = on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO open_businesses (student_id, kind, ref_id, opened_at) VALUES ($1, 'transfer', $2, $3)"
        ).bind(st.id).bind(id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()));
        if let Err(e) = locked {
            let e = AppError::from(e);
            if e.is_unique_violation() {
                return Err(Error::new(
                    ErrorCode::TransferInProgress,
                    "该学生有正在办理的业务（如转学、休学），须等该业务办结或撤销后才能申请",
                )
                .at("student_ref")
                .into());
            }
            return Err(e);
        }
        // The whole chain in one INSERT.
        if !state.chain.is_empty() {
            let values = (0..state.chain.len())
                .map(|i| {
                    let p = i * 14;
                    let ps: Vec<String> = (p + 1..=p + 14).map(|n| format!("${n}")).collect();
                    format!("({})", ps.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let steps_sql = format!(
                "INSERT INTO transfer_steps (transfer_id, idx, code, side, role, party_kind, party_code, shared, began_on, \
             due_date, deadline_days, overdue_action, party_region, waiting) VALUES {values}"
            );
            // The waiting party's region, kept on the step for the 督办 dashboard's index.
            let region_of = |party: &OrgRef| match party {
                OrgRef::School(c) if *c == from_school.code => from_school.region.clone(),
                OrgRef::School(_) => to_school.region.clone(),
                OrgRef::Authority(r) => r.clone(),
                OrgRef::National => String::new(),
            };
            on_tx!(&mut tx, c => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(steps_sql.as_str()));
                for (idx, step) in state.chain.iter().enumerate() {
                    let (kind_s, code) = crate::notifications::org_key(&step.party);
                    let (began, due_on) = if idx == 0 {
                        (Some(today), Some(due))
                    } else {
                        (None, None)
                    };
                    let side_policy = if step.side == Side::In {
                        &to_policy
                    } else {
                        &from_policy
                    };
                    q = q.bind(id).bind(idx as i64).bind(step.code()).bind(side_str(step.side)).bind(role_str(step.role))
                        .bind(kind_s).bind(code).bind(step.shared).bind(began).bind(due_on)
                        .bind(i64::from(side_policy.deadline_days)).bind(overdue_str(side_policy.overdue_action))
                        .bind(region_of(&step.party)).bind(due_on.map(|_| 1i16));
                }
                q.execute(&mut *c).await.map(|r| r.rows_affected())
            })?;
        }
        for (f, ct) in &files {
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO transfer_evidence (transfer_id, filename, content_type, size, data, uploaded_at) VALUES ($1, $2, $3, $4, $5, $6)"
            ).bind(id).bind(&f.filename).bind(*ct).bind(f.bytes.len() as i64).bind(&f.bytes).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        let ctx = NoticeCtx {
            student_name: st.name.clone(),
            from_name: from_school.name.clone(),
            to_name: to_school.name.clone(),
            step_label: String::new(),
            due: Some(due),
        };
        let notices: Vec<(&OrgRef, &str, String)> = notices
            .iter()
            .map(|(org, n)| (org, n.as_str(), notice_text(*n, kind, &ctx)))
            .collect();
        notify_all(&mut tx, Some(id), now, &notices).await?;
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "transfer.file",
                entity_type: "transfer",
                entity_id: id.to_string(),
                before: None,
                after: Some(serde_json::json!({
                    "kind": kind.as_str(), "status": state.status.as_str(), "student_id": st.id,
                    "from_school": from_school.code, "to_school": to_school.code,
                    "to_grade": grade.code(), "to_class_id": req.to_class_id, "evidence": files.len(),
                    "from_policy_version": from_version, "to_policy_version": to_version,
                })),
            },
            None,
        )
        .await?;
        if docked > 0 {
            crate::dock::outbox(&mut tx, id, "transfer.file", now).await?;
        }
        tx.commit().await?;
        self.transfer(user, id).await
    }

    /// 审核: the current step's party approves or rejects (reject needs an opinion).
    pub async fn review_transfer(
        &self,
        user: &CurrentUser,
        id: i64,
        approve: bool,
        opinion: &str,
    ) -> AppResult<TransferDetail> {
        self.act(
            user,
            id,
            Action::Review {
                approve,
                opinion: opinion.trim().to_string(),
            },
            None,
        )
        .await
    }

    /// 撤销 by the receiving school before approval ends.
    pub async fn withdraw_transfer(
        &self,
        user: &CurrentUser,
        id: i64,
        reason: &str,
    ) -> AppResult<TransferDetail> {
        self.act(
            user,
            id,
            Action::Withdraw {
                reason: reason.trim().to_string(),
            },
            None,
        )
        .await
    }

    /// 调档: after every approval, the receiving school pulls the electronic file.
    pub async fn pull_file(&self, user: &CurrentUser, id: i64) -> AppResult<TransferDetail> {
        self.act(user, id, Action::PullFile, None).await
    }

    /// 纸质档案: `sent` by the sending school (with the method), `received` by the receiving school.
    pub async fn paper_file(
        &self,
        user: &CurrentUser,
        id: i64,
        sent: bool,
        method: Option<&str>,
        note: &str,
    ) -> AppResult<TransferDetail> {
        let note = note.trim().to_string();
        if note.chars().count() > 500 {
            return Err(Error::validation("note", "备注不超过500字").into());
        }
        let action = if sent {
            Action::PaperSent { note }
        } else {
            Action::PaperReceived { note }
        };
        let method = method
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string);
        self.act(user, id, action, method).await
    }

    async fn act(
        &self,
        user: &CurrentUser,
        id: i64,
        action: Action,
        method: Option<String>,
    ) -> AppResult<TransferDetail> {
        let Some(mut l) = self.load_full(id).await? else {
            return Err(Error::not_found("该转学申请").into());
        };
        let (t, steps) = (&l.t, &l.steps);
        if !self.may_see(user, t, steps) {
            return Err(Error::not_found("该转学申请").into());
        }
        // Every party of a transfer is in its sending or receiving province.
        if l.extra.from_docked.is_some() || l.extra.to_docked.is_some() {
            self.refuse_docked(user, t, steps, &action).await?;
        }
        let state = Self::state_of(t, steps);
        let mut actor = user.actor();
        let mut name = user.display_name.clone();
        if matches!(action, Action::Review { .. }) && state.status.is_review() {
            let current = steps.get(state.current_step);
            // After escalation the authority above may act in the step party's place.
            if let Some(cur) = current
                && user.role == Role::AuthorityAdmin
                && cur.escalated_to.is_some()
                && matches!(&user.org, OrgRef::Authority(r) if Some(r) == cur.escalated_to.as_ref())
            {
                let spec = cur.spec();
                actor = Actor {
                    user_id: user.id,
                    role: if spec.role == StepRole::SchoolReview {
                        Role::SchoolReviewer
                    } else {
                        Role::AuthorityAdmin
                    },
                    org: spec.party,
                };
                name = format!("{}（上级督办）", user.display_name);
            } else {
                // A party whose step has just been decided (a double click, a second reviewer of the
                // same office) learns that the state moved on, not that it is "not its turn".
                let cur = state.current_step.min(state.chain.len());
                let acted = state.chain[..cur].iter().any(|s| s.party == user.org);
                let acts_later = state.chain[cur..].iter().any(|s| s.party == user.org);
                if acted && !acts_later {
                    return Err(Error::new(
                        ErrorCode::Conflict,
                        "本单位已审核过该申请，申请已转至下一环节，请刷新后查看",
                    )
                    .into());
                }
            }
        }
        if matches!(action, Action::Review { .. })
            && let Some(cur) = steps.get(state.current_step)
            && cur.role == "leader_confirm"
            && state.current_step > 0
            && steps[state.current_step - 1].actor_user_id == Some(user.id)
        {
            // 领导确认 is a second pair of eyes: not the operator who approved the step before.
            return Err(Error::forbidden("领导确认须由经办人以外的人员办理").into());
        }
        let who = Who {
            user_id: Some(user.id),
            name,
            audit: user.audit_actor(),
            auto: false,
        };
        self.apply_to(
            &mut l.t,
            &mut l.steps,
            &actor,
            &who,
            &action,
            method,
            Some(&user.username),
        )
        .await?;
        // The answer is built from the rows just written, not read again.
        self.answer(user, l).await
    }

    /// Decides and writes one action on a loaded transfer: the transition, its audit row and its
    /// notifications in one transaction guarded by the version.
    pub(crate) async fn apply_action(
        &self,
        t: &TransferRow,
        steps: &[StepRow],
        actor: &Actor,
        who: &Who,
        action: &Action,
        method: Option<String>,
    ) -> AppResult<()> {
        let (mut t, mut steps) = (t.clone(), steps.to_vec());
        self.apply_to(&mut t, &mut steps, actor, who, action, method, None)
            .await
    }

    /// [`Self::apply_action`], then brings `t` and `steps` to what the transaction wrote (the
    /// detail names the deciding user by `username`).
    #[allow(clippy::too_many_arguments)]
    async fn apply_to(
        &self,
        t: &mut TransferRow,
        steps: &mut [StepRow],
        actor: &Actor,
        who: &Who,
        action: &Action,
        method: Option<String>,
        username: Option<&str>,
    ) -> AppResult<()> {
        let id = t.id;
        let state = Self::state_of(t, steps);
        let tr: Transition = machine::decide(&state, actor, action)?;
        let now = self.clock.now();
        let today = self.clock.today();
        let kind = TransferKind::parse(&t.kind).unwrap_or(TransferKind::CrossProvince);
        let decided = match action {
            Action::Review { .. } => Some(tr.decided_step.unwrap_or(state.current_step)),
            _ => None,
        };
        let step_label = decided
            .and_then(|i| state.chain.get(i))
            .map(|s| s.party_label_zh().to_string())
            .unwrap_or_default();
        let next_due = match action {
            Action::Review { approve: true, .. } if tr.to.is_review() => {
                let days = steps
                    .get(tr.current_step)
                    .map(|s| s.deadline_days)
                    .unwrap_or(i64::from(STEP_DEADLINE_DAYS));
                Some(self.calendar().due_date(today, days.clamp(1, 60) as u32))
            }
            _ => None,
        };
        let paper_due = today.checked_add_months(Months::new(1)).unwrap_or(today);
        let approved = tr.to == TransferStatus::Approved;

        let mut tx = self.db.begin().await?;
        // One UPDATE: the transition with the action's own columns, guarded by the version; it
        // also says whether a docked province takes part (only then has the outbox work).
        let docked: Option<i64> = on_tx!(&mut tx, c => {
            let q = sqlx::query_scalar(update_sql(action, approved))
                .bind(tr.to.as_str())
                .bind(tr.current_step as i64)
                .bind(now)
                .bind(id)
                .bind(t.version);
            let q = match action {
                Action::Review { .. } => q.bind(next_due),
                Action::Withdraw { reason } => q.bind(reason.as_str()),
                Action::PullFile => q.bind(paper_due),
                Action::PaperSent { note } => q.bind(method.as_deref()).bind(note.as_str()),
                Action::PaperReceived { note } => q.bind(note.as_str()),
            };
            q.fetch_optional(&mut *c).await
        })?;
        let Some(docked) = docked else {
            return Err(Error::conflict().into());
        };
        if let (Action::Review { approve, opinion }, Some(idx)) = (action, decided) {
            // The decision and the start of the next step, in one statement.
            let opinion = Some(opinion.as_str()).filter(|o| !o.is_empty());
            let next = if next_due.is_some() {
                tr.current_step as i64
            } else {
                -1
            };
            on_tx!(&mut tx, c => sqlx::query(DECIDE_SQL
            ).bind(idx as i64).bind(if *approve { "approve" } else { "reject" }).bind(opinion)
            .bind(who.user_id).bind(&who.name).bind(now).bind(who.auto)
            .bind(next).bind(next_due.map(|_| today)).bind(next_due).bind(id)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        if let Action::Withdraw { .. } = action {
            // The step it waited on waits no more (the 督办 dashboard's index).
            on_tx!(&mut tx, c => sqlx::query(STOP_WAITING_SQL).bind(id)
                .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        if tr.moves_enrollment {
            self.move_enrollment(&mut tx, t, now).await?;
        }
        if tr.unlocks_student {
            on_tx!(&mut tx, c => sqlx::query(
                "DELETE FROM open_businesses WHERE student_id = $1 AND kind = 'transfer' AND ref_id = $2"
            ).bind(t.student_id).bind(id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        let ctx = NoticeCtx {
            student_name: t.student_name.clone(),
            from_name: t.from_school_name.clone(),
            to_name: t.to_school_name.clone(),
            step_label,
            due: next_due,
        };
        let notices: Vec<(&OrgRef, &str, String)> = tr
            .notify
            .iter()
            .map(|(org, n)| (org, n.as_str(), notice_text(*n, kind, &ctx)))
            .collect();
        notify_all(&mut tx, Some(id), now, &notices).await?;
        let action_name = match action {
            Action::Review { approve: true, .. } if who.auto => "transfer.auto_approve",
            Action::Review { approve: true, .. } => "transfer.approve",
            Action::Review { approve: false, .. } => "transfer.reject",
            Action::Withdraw { .. } => "transfer.withdraw",
            Action::PullFile => "transfer.pull_file",
            Action::PaperSent { .. } => "transfer.paper_sent",
            Action::PaperReceived { .. } => "transfer.paper_received",
        };
        let detail = match action {
            Action::Review { opinion, .. } => {
                serde_json::json!({ "step": tr.decided_step, "opinion": opinion, "as": who.name })
            }
            Action::Withdraw { reason } => serde_json::json!({ "reason": reason }),
            Action::PaperSent { note } => serde_json::json!({ "method": method, "note": note }),
            Action::PaperReceived { note } => serde_json::json!({ "note": note }),
            Action::PullFile => {
                serde_json::json!({ "to_school": t.to_school, "to_class_id": t.to_class_id })
            }
        };
        audit::record(
            &mut tx,
            now,
            &who.audit,
            AuditEvent {
                action: action_name,
                entity_type: "transfer",
                entity_id: id.to_string(),
                before: Some(serde_json::json!({ "status": t.status, "current_step": t.current_step, "version": t.version })),
                after: Some(serde_json::json!({ "status": tr.to.as_str(), "current_step": tr.current_step, "detail": detail })),
            },
            None,
        )
        .await?;
        if docked > 0 {
            crate::dock::outbox(&mut tx, id, action_name, now).await?;
        }
        tx.commit().await?;

        // What the transaction wrote, for the answer.
        t.status = tr.to.as_str().to_string();
        t.current_step = tr.current_step as i64;
        t.version += 1;
        t.updated_at = now;
        match action {
            Action::Review { approve, opinion } => {
                if let Some(s) = decided
                    .and_then(|i| steps.iter_mut().find(|s| s.idx == i as i64))
                    .filter(|s| s.decision.is_none())
                {
                    s.decision = Some(if *approve { "approve" } else { "reject" }.to_string());
                    s.opinion = Some(opinion.clone()).filter(|o| !o.is_empty());
                    s.actor_user_id = who.user_id;
                    s.actor_username = username.map(str::to_string);
                    s.actor_name = Some(who.name.clone());
                    s.decided_at = Some(now);
                    s.auto_decided = who.auto;
                }
                if let Some(due) = next_due
                    && let Some(s) = steps.iter_mut().find(|s| s.idx == tr.current_step as i64)
                {
                    s.began_on = Some(today);
                    s.due_date = Some(due);
                }
                if approved {
                    t.approved_at = Some(now);
                }
            }
            Action::Withdraw { reason } => t.withdraw_reason = Some(reason.clone()),
            Action::PullFile => {
                t.pulled_at = Some(now);
                t.paper_due_date = Some(paper_due);
            }
            Action::PaperSent { note } => {
                t.paper_sent_at = Some(now);
                t.paper_method = method;
                t.paper_sent_note = Some(note.clone());
            }
            Action::PaperReceived { note } => {
                t.paper_received_at = Some(now);
                t.paper_received_note = Some(note.clone());
            }
        }
        Ok(())
    }

    /// 调档 in the open transaction: the enrollment, the archive custody and the scoping region
    /// move to the receiving school; the sending school keeps its enrollment row as 已转出.
    async fn move_enrollment(
        &self,
        tx: &mut Tx,
        t: &TransferRow,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        // The class's room is checked in the same statement that moves the student.
        let moved = on_tx!(tx, c => sqlx::query(
            MOVE_STUDENT_SQL
        ).bind(t.to_school_id).bind(&t.to_grade).bind(t.to_class_id).bind(&t.to_region).bind(now)
        .bind(t.student_id).bind(t.from_school_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if moved != 1 {
            let (capacity, enrolled): (i64, i64) = on_tx!(tx, c => sqlx::query_as(
                "SELECT c.capacity, (SELECT COUNT(*) FROM students s WHERE s.class_id = c.id) FROM classes c WHERE c.id = $1"
            ).bind(t.to_class_id).fetch_one(&mut *c).await)?;
            if enrolled >= capacity {
                return Err(Error::new(
                    ErrorCode::ClassFull,
                    format!(
                        "转入班级已满（{enrolled}/{capacity}人），请联系学校调整班级容量后再调档"
                    ),
                )
                .into());
            }
            return Err(Error::conflict().into());
        }
        on_tx!(tx, c => {
            sqlx::query(
                "UPDATE enrollments SET status = 'transferred_out', ended_at = $1, transfer_id = $2 \
                 WHERE student_id = $3 AND school_id = $4 AND ended_at IS NULL",
            ).bind(now).bind(t.id).bind(t.student_id).bind(t.from_school_id).execute(&mut *c).await?;
            sqlx::query(
                "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at, transfer_id) \
                 VALUES ($1, $2, $3, $4, 'active', $5, $6)",
            ).bind(t.student_id).bind(t.to_school_id).bind(&t.to_grade).bind(t.to_class_id).bind(now).bind(t.id)
            .execute(&mut *c).await.map(|r| r.rows_affected())?
        });
        Ok(())
    }

    /// Classes of the caller's own school (for the application form's target-class choice).
    pub async fn own_school(&self, user: &CurrentUser) -> AppResult<Option<SchoolOut>> {
        match &user.org {
            OrgRef::School(c) => self.school_unscoped(c).await,
            _ => Ok(None),
        }
    }
}
