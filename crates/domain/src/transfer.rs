//! The transfer state machine (跨省转学 / 省内转学): one resource for both kinds.
//!
//! [`decide`] is a pure function of (state, actor, action) that answers a [`Transition`] or a typed
//! refusal; the application layer stores the transition with optimistic concurrency, writes the
//! audit row and the notifications it lists. Keeping every rule here means the web UI, the JSON
//! API and the docking interface cannot disagree about who may do what, and when.
//!
//! The flow (the seed's attachment, Art. 14): the receiving school files; the chain of review
//! steps approves in order (receiving school, receiving authority, sending school, sending
//! authority by default); any 不同意 ends the flow; the receiving school may withdraw until approval
//! ends; then it pulls the file (调档, the enrollment moves), the sending school sends the paper
//! file and the receiving school confirms its receipt.

use serde::{Deserialize, Serialize};

use crate::access::{Actor, OrgRef, Role};
use crate::error::{Error, ErrorCode};

/// Cross- or intra-province; decided by the system from the two schools' regions, never chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    CrossProvince,
    IntraProvince,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrossProvince => "cross_province",
            Self::IntraProvince => "intra_province",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cross_province" => Some(Self::CrossProvince),
            "intra_province" => Some(Self::IntraProvince),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::CrossProvince => "跨省转学",
            Self::IntraProvince => "省内转学",
        }
    }

    /// Compares the provinces (first two digits) of two 6-digit region codes. A code too short to
    /// name a province counts as another province, the kind with the stricter flow.
    pub fn between(from_region: &str, to_region: &str) -> Self {
        match (from_region.get(..2), to_region.get(..2)) {
            (Some(a), Some(b)) if a == b => Self::IntraProvince,
            _ => Self::CrossProvince,
        }
    }
}

/// Where a transfer stands. The four review statuses name the phase; a province's extra steps
/// (a city level, a leader's confirmation) show in the step list, not as new statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    InSchoolReview,
    InAuthorityReview,
    OutSchoolReview,
    OutAuthorityReview,
    Approved,
    FilePulled,
    PaperSent,
    Completed,
    Rejected,
    Withdrawn,
    /// Closed by the province as stale (open too long), with a reason — never purged silently.
    Closed,
}

impl TransferStatus {
    pub const ALL: &'static [Self] = &[
        Self::InSchoolReview,
        Self::InAuthorityReview,
        Self::OutSchoolReview,
        Self::OutAuthorityReview,
        Self::Approved,
        Self::FilePulled,
        Self::PaperSent,
        Self::Completed,
        Self::Rejected,
        Self::Withdrawn,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSchoolReview => "in_school_review",
            Self::InAuthorityReview => "in_authority_review",
            Self::OutSchoolReview => "out_school_review",
            Self::OutAuthorityReview => "out_authority_review",
            Self::Approved => "approved",
            Self::FilePulled => "file_pulled",
            Self::PaperSent => "paper_sent",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|x| x.as_str() == s)
    }

    /// The label of the seed's screens.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::InSchoolReview => "待转入学校审核",
            Self::InAuthorityReview => "待转入学籍主管部门审核",
            Self::OutSchoolReview => "待转出学校审核",
            Self::OutAuthorityReview => "待转出学籍主管部门审核",
            Self::Approved => "四方核办完成，待调档",
            Self::FilePulled => "已调档",
            Self::PaperSent => "纸质档案已寄出",
            Self::Completed => "已完成",
            Self::Rejected => "不同意（已终止）",
            Self::Withdrawn => "已撤销",
            Self::Closed => "已关闭（超期未办结）",
        }
    }

    /// A label short enough for a table cell or a filter chip.
    pub fn short_label_zh(self) -> &'static str {
        match self {
            Self::Approved => "待调档",
            Self::Rejected => "不同意",
            other => other.label_zh(),
        }
    }

    /// Nothing more can happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Rejected | Self::Withdrawn | Self::Closed
        )
    }

    /// Waiting for a review step.
    pub fn is_review(self) -> bool {
        matches!(
            self,
            Self::InSchoolReview
                | Self::InAuthorityReview
                | Self::OutSchoolReview
                | Self::OutAuthorityReview
        )
    }

    /// 在办业务: the student may not start another business until the file is pulled (the record
    /// then lives at the receiving school) or the flow ends.
    pub fn locks_student(self) -> bool {
        self.is_review() || self == Self::Approved
    }
}

/// Which school's side a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The receiving side (转入).
    In,
    /// The sending side (转出).
    Out,
}

/// What a step asks of its party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRole {
    /// The school's reviewer (学籍主管领导 / 审核员).
    SchoolReview,
    /// The authority (学籍主管部门).
    AuthorityReview,
    /// A leader's confirmation after the authority's operator, where a province requires it.
    LeaderConfirm,
}

/// One review step of a transfer's chain, fixed when the application is filed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StepSpec {
    pub side: Side,
    pub party: OrgRef,
    pub role: StepRole,
    /// One authority serving both schools approves once, for both sides.
    pub shared: bool,
}

impl StepSpec {
    /// A school reviewer's step.
    pub fn school(side: Side, school_code: impl Into<String>) -> Self {
        Self {
            side,
            party: OrgRef::School(school_code.into()),
            role: StepRole::SchoolReview,
            shared: false,
        }
    }

    /// An authority's step.
    pub fn authority(side: Side, region_code: impl Into<String>) -> Self {
        Self {
            side,
            party: OrgRef::Authority(region_code.into()),
            role: StepRole::AuthorityReview,
            shared: false,
        }
    }

    /// The status a transfer shows while this step waits.
    pub fn status(&self) -> TransferStatus {
        match (self.side, self.role) {
            (Side::In, StepRole::SchoolReview) => TransferStatus::InSchoolReview,
            (Side::In, _) => TransferStatus::InAuthorityReview,
            (Side::Out, StepRole::SchoolReview) => TransferStatus::OutSchoolReview,
            (Side::Out, _) => TransferStatus::OutAuthorityReview,
        }
    }

    /// Who the step waits for, as the step list shows it.
    pub fn party_label_zh(&self) -> &'static str {
        match (self.shared, self.side, self.role) {
            (_, Side::In, StepRole::SchoolReview) => "转入学校",
            (_, Side::Out, StepRole::SchoolReview) => "转出学校",
            (true, _, StepRole::AuthorityReview) => "转入、转出学籍主管部门",
            (true, _, StepRole::LeaderConfirm) => "转入、转出学籍主管部门领导",
            (false, Side::In, StepRole::AuthorityReview) => "转入学籍主管部门",
            (false, Side::In, StepRole::LeaderConfirm) => "转入学籍主管部门领导",
            (false, Side::Out, StepRole::AuthorityReview) => "转出学籍主管部门",
            (false, Side::Out, StepRole::LeaderConfirm) => "转出学籍主管部门领导",
        }
    }

    /// A stable word for the API's `step` / `party` fields.
    pub fn code(&self) -> &'static str {
        match (self.shared, self.side, self.role) {
            (_, Side::In, StepRole::SchoolReview) => "in_school",
            (_, Side::Out, StepRole::SchoolReview) => "out_school",
            (true, _, StepRole::AuthorityReview) => "shared_authority",
            (true, _, StepRole::LeaderConfirm) => "shared_authority_leader",
            (false, Side::In, StepRole::AuthorityReview) => "in_authority",
            (false, Side::In, StepRole::LeaderConfirm) => "in_authority_leader",
            (false, Side::Out, StepRole::AuthorityReview) => "out_authority",
            (false, Side::Out, StepRole::LeaderConfirm) => "out_authority_leader",
        }
    }

    /// "待转出学校审核", "待转入学籍主管部门领导确认": what the step waits for, in a sentence.
    pub fn waiting_zh(&self) -> String {
        let verb = match self.role {
            StepRole::LeaderConfirm => "确认",
            _ => "审核",
        };
        format!("待{}{verb}", self.party_label_zh())
    }
}

/// The four parties of a transfer: school codes and the region codes of their authorities.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Parties {
    pub from_school: String,
    pub from_authority: String,
    pub to_school: String,
    pub to_authority: String,
}

/// The seed's chain: receiving school, receiving authority, sending school, sending authority.
/// When one authority serves both schools it approves once, after both schools, so that it
/// decides with both schools' opinions in hand.
pub fn default_chain(p: &Parties) -> Vec<StepSpec> {
    if p.from_authority == p.to_authority {
        vec![
            StepSpec::school(Side::In, &p.to_school),
            StepSpec::school(Side::Out, &p.from_school),
            StepSpec {
                shared: true,
                ..StepSpec::authority(Side::Out, &p.to_authority)
            },
        ]
    } else {
        vec![
            StepSpec::school(Side::In, &p.to_school),
            StepSpec::authority(Side::In, &p.to_authority),
            StepSpec::school(Side::Out, &p.from_school),
            StepSpec::authority(Side::Out, &p.from_authority),
        ]
    }
}

/// What [`decide`] needs to know of a stored transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferState {
    pub status: TransferStatus,
    pub chain: Vec<StepSpec>,
    /// Index of the waiting step; `chain.len()` once approval has ended (approved, rejected,
    /// withdrawn).
    pub current_step: usize,
    /// User id of the administrator who filed: they never review their own application.
    pub filed_by: i64,
    pub to_school: String,
    pub from_school: String,
}

impl TransferState {
    /// The waiting review step, if any.
    pub fn current(&self) -> Option<&StepSpec> {
        if self.status.is_review() {
            self.chain.get(self.current_step)
        } else {
            None
        }
    }

    /// The organisation expected to act next (for 待办 lists): the waiting step's party, or the
    /// school that pulls the file / sends / receives the paper file. `None` once terminal.
    pub fn waiting_on(&self) -> Option<OrgRef> {
        match self.status {
            s if s.is_review() => self.current().map(|step| step.party.clone()),
            TransferStatus::Approved | TransferStatus::PaperSent => {
                Some(OrgRef::School(self.to_school.clone()))
            }
            TransferStatus::FilePulled => Some(OrgRef::School(self.from_school.clone())),
            _ => None,
        }
    }

    /// Takes a transition returned by [`decide`] for this state.
    pub fn apply(&mut self, t: &Transition) {
        self.status = t.to;
        self.current_step = t.current_step;
    }
}

/// What a user asks of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// 同意 / 不同意 on the waiting step.
    Review { approve: bool, opinion: String },
    /// 撤销 by the receiving school before approval ends.
    Withdraw { reason: String },
    /// 调档 by the receiving school after approval.
    PullFile,
    /// The sending school has sent the paper file.
    PaperSent { note: String },
    /// The receiving school has received the paper file.
    PaperReceived { note: String },
}

/// A message for an organisation's notification list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    StepWaiting,
    StepApproved,
    Approved,
    Rejected,
    Withdrawn,
    FilePulled,
    PaperSent,
    PaperReceived,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StepWaiting => "step_waiting",
            Self::StepApproved => "step_approved",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
            Self::FilePulled => "file_pulled",
            Self::PaperSent => "paper_sent",
            Self::PaperReceived => "paper_received",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::StepWaiting,
            Self::StepApproved,
            Self::Approved,
            Self::Rejected,
            Self::Withdrawn,
            Self::FilePulled,
            Self::PaperSent,
            Self::PaperReceived,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// The notification's text (the student's name is added by the caller).
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::StepWaiting => "有转学申请待本单位审核，请在10个工作日内办理",
            Self::StepApproved => "转学申请已通过一步审核",
            Self::Approved => "转学申请四方审核已完成，转入学校可通知学生报到并调档",
            Self::Rejected => "转学申请未获同意，流程已终止",
            Self::Withdrawn => "转学申请已由转入学校撤销",
            Self::FilePulled => "转入学校已调档，请按约定寄出纸质学籍档案",
            Self::PaperSent => "转出学校已寄出纸质学籍档案，收到后请确认接收",
            Self::PaperReceived => "转入学校已接收纸质学籍档案，转学办结",
        }
    }
}

/// The outcome of an allowed action, for the application layer to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub to: TransferStatus,
    /// The new `current_step` (`chain.len()` once approval has ended).
    pub current_step: usize,
    /// The review step this action decided (its decision, opinion, actor and time are recorded).
    pub decided_step: Option<usize>,
    /// 调档: move the student's enrollment and archive to the receiving school, in the same
    /// transaction.
    pub moves_enrollment: bool,
    /// Release the business lock (在办业务) on the student.
    pub unlocks_student: bool,
    /// Who to notify of what; one entry per organisation.
    pub notify: Vec<(OrgRef, Notice)>,
}

/// Opens a transfer on its chain's first step and says whom to notify. An empty chain (no review
/// required) starts approved.
pub fn new_transfer(
    chain: Vec<StepSpec>,
    filed_by: i64,
    from_school: impl Into<String>,
    to_school: impl Into<String>,
) -> (TransferState, Vec<(OrgRef, Notice)>) {
    let state = TransferState {
        status: chain
            .first()
            .map_or(TransferStatus::Approved, StepSpec::status),
        current_step: 0,
        chain,
        filed_by,
        to_school: to_school.into(),
        from_school: from_school.into(),
    };
    let notify = match state.chain.first() {
        Some(step) => vec![(step.party.clone(), Notice::StepWaiting)],
        None => dedupe(vec![
            (state.receiving_org(), Notice::Approved),
            (state.sending_org(), Notice::Approved),
        ]),
    };
    (state, notify)
}

impl TransferState {
    fn receiving_org(&self) -> OrgRef {
        OrgRef::School(self.to_school.clone())
    }

    fn sending_org(&self) -> OrgRef {
        OrgRef::School(self.from_school.clone())
    }

    fn is_school_user_of(&self, actor: &Actor, school: &str) -> bool {
        actor.role.is_school() && matches!(&actor.org, OrgRef::School(c) if c == school)
    }

    /// Whether the actor's organisation takes part in this transfer at all.
    fn involves(&self, org: &OrgRef) -> bool {
        matches!(org, OrgRef::School(c) if *c == self.to_school || *c == self.from_school)
            || self.chain.iter().any(|s| s.party == *org)
    }
}

/// Decides whether `actor` may do `action` on a transfer in `state`, and what follows.
pub fn decide(state: &TransferState, actor: &Actor, action: &Action) -> Result<Transition, Error> {
    if state.status.is_terminal() {
        return Err(conflict(format!(
            "该转学已结束（{}），不能再办理",
            state.status.label_zh()
        )));
    }
    match action {
        Action::Review { approve, opinion } => review(state, actor, *approve, opinion),
        Action::Withdraw { reason } => withdraw(state, actor, reason),
        Action::PullFile => pull_file(state, actor),
        Action::PaperSent { .. } => paper_sent(state, actor),
        Action::PaperReceived { .. } => paper_received(state, actor),
    }
}

fn conflict(message: String) -> Error {
    Error::new(ErrorCode::Conflict, message)
}

fn review(
    state: &TransferState,
    actor: &Actor,
    approve: bool,
    opinion: &str,
) -> Result<Transition, Error> {
    let Some(step) = state.current() else {
        return Err(conflict(format!(
            "该转学当前{}，已不在审核阶段",
            state.status.label_zh()
        )));
    };
    check_reviewer(state, step, actor)?;
    let index = state.current_step;
    if !approve {
        if opinion.trim().is_empty() {
            return Err(
                Error::new(ErrorCode::ReasonRequired, "不同意时须填写审核意见").at("opinion"),
            );
        }
        return Ok(Transition {
            to: TransferStatus::Rejected,
            current_step: state.chain.len(),
            decided_step: Some(index),
            moves_enrollment: false,
            unlocks_student: true,
            notify: dedupe(vec![
                (state.receiving_org(), Notice::Rejected),
                (state.sending_org(), Notice::Rejected),
            ]),
        });
    }
    let next = index + 1;
    let (to, notify) = match state.chain.get(next) {
        None => (
            TransferStatus::Approved,
            vec![
                (state.receiving_org(), Notice::Approved),
                (state.sending_org(), Notice::Approved),
            ],
        ),
        Some(step) => (
            step.status(),
            vec![
                (step.party.clone(), Notice::StepWaiting),
                (state.receiving_org(), Notice::StepApproved),
            ],
        ),
    };
    Ok(Transition {
        to,
        current_step: next,
        decided_step: Some(index),
        moves_enrollment: false,
        unlocks_student: false,
        notify: dedupe(notify),
    })
}

/// Only the waiting step's party, in the right role, and never the filer, reviews.
fn check_reviewer(state: &TransferState, step: &StepSpec, actor: &Actor) -> Result<(), Error> {
    if actor.role == Role::NationalAdmin {
        return Err(Error::forbidden(
            "全国学籍管理员不办理转学审核，请由当前审核单位办理",
        ));
    }
    if actor.org == step.party {
        return match step.role {
            StepRole::SchoolReview if actor.user_id == state.filed_by => Err(Error::forbidden(
                "提交转学申请的人员不能审核本人提交的申请，请由学籍主管领导（审核员）审核",
            )),
            StepRole::SchoolReview if actor.role == Role::SchoolReviewer => Ok(()),
            StepRole::SchoolReview => {
                Err(Error::forbidden("学校审核须由学籍主管领导（审核员）办理"))
            }
            StepRole::AuthorityReview | StepRole::LeaderConfirm
                if actor.role == Role::AuthorityAdmin =>
            {
                Ok(())
            }
            StepRole::AuthorityReview | StepRole::LeaderConfirm => {
                Err(Error::forbidden("此步骤须由学籍主管部门的账号办理"))
            }
        };
    }
    // A party whose own step is already behind: a second click or a stale page, not an early one.
    if state.chain[..state.current_step.min(state.chain.len())]
        .iter()
        .any(|s| s.party == actor.org)
    {
        return Err(conflict(format!(
            "本单位已办理过该申请的审核，当前{}，请刷新页面查看",
            step.waiting_zh()
        )));
    }
    if state.involves(&actor.org) {
        return Err(Error::new(
            ErrorCode::NotYourTurn,
            format!("当前{}，尚未轮到本单位", step.waiting_zh()),
        ));
    }
    Err(Error::forbidden("本单位不是该转学的审核单位，无权审核"))
}

fn withdraw(state: &TransferState, actor: &Actor, reason: &str) -> Result<Transition, Error> {
    if !state.is_school_user_of(actor, &state.to_school) {
        return Err(Error::forbidden("只有转入学校可以撤销转学申请"));
    }
    let Some(step) = state.current() else {
        return Err(conflict(format!(
            "四方审核已完成，不能撤销（当前{}）",
            state.status.label_zh()
        )));
    };
    if reason.trim().is_empty() {
        return Err(Error::new(ErrorCode::ReasonRequired, "撤销时须填写撤销原因").at("reason"));
    }
    Ok(Transition {
        to: TransferStatus::Withdrawn,
        current_step: state.chain.len(),
        decided_step: None,
        moves_enrollment: false,
        unlocks_student: true,
        notify: dedupe(vec![
            (step.party.clone(), Notice::Withdrawn),
            (state.sending_org(), Notice::Withdrawn),
        ]),
    })
}

fn pull_file(state: &TransferState, actor: &Actor) -> Result<Transition, Error> {
    if !state.is_school_user_of(actor, &state.to_school) {
        return Err(Error::forbidden("只有转入学校可以调档"));
    }
    match state.status {
        TransferStatus::Approved => Ok(Transition {
            to: TransferStatus::FilePulled,
            current_step: state.current_step,
            decided_step: None,
            moves_enrollment: true,
            unlocks_student: true,
            notify: vec![(state.sending_org(), Notice::FilePulled)],
        }),
        s if s.is_review() => Err(conflict(format!(
            "四方审核尚未完成，不能调档（当前{}）",
            s.label_zh()
        ))),
        _ => Err(conflict("已调档，不能重复调档".into())),
    }
}

fn paper_sent(state: &TransferState, actor: &Actor) -> Result<Transition, Error> {
    if !state.is_school_user_of(actor, &state.from_school) {
        return Err(Error::forbidden("纸质学籍档案须由转出学校寄出"));
    }
    match state.status {
        TransferStatus::FilePulled => Ok(Transition {
            to: TransferStatus::PaperSent,
            current_step: state.current_step,
            decided_step: None,
            moves_enrollment: false,
            unlocks_student: false,
            notify: vec![(state.receiving_org(), Notice::PaperSent)],
        }),
        TransferStatus::PaperSent => Err(conflict("纸质学籍档案已登记寄出，无需重复登记".into())),
        s => Err(conflict(format!(
            "转入学校尚未调档，暂不能寄出纸质学籍档案（当前{}）",
            s.label_zh()
        ))),
    }
}

fn paper_received(state: &TransferState, actor: &Actor) -> Result<Transition, Error> {
    if !state.is_school_user_of(actor, &state.to_school) {
        return Err(Error::forbidden("纸质学籍档案须由转入学校确认接收"));
    }
    match state.status {
        TransferStatus::PaperSent => Ok(Transition {
            to: TransferStatus::Completed,
            current_step: state.current_step,
            decided_step: None,
            moves_enrollment: false,
            unlocks_student: false,
            notify: vec![(state.sending_org(), Notice::PaperReceived)],
        }),
        s => Err(conflict(format!(
            "转出学校尚未寄出纸质学籍档案，暂不能确认接收（当前{}）",
            s.label_zh()
        ))),
    }
}

/// One notice per organisation; the first (most specific) wins.
fn dedupe(mut list: Vec<(OrgRef, Notice)>) -> Vec<(OrgRef, Notice)> {
    let mut i = 0;
    while i < list.len() {
        if list[..i].iter().any(|(o, _)| *o == list[i].0) {
            list.remove(i);
        } else {
            i += 1;
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TO: &str = "4101050001";
    const FROM: &str = "4401060002";
    const TO_AUTH: &str = "410105";
    const FROM_AUTH: &str = "440106";
    const FILER: i64 = 1;

    fn parties(shared: bool) -> Parties {
        Parties {
            from_school: FROM.into(),
            from_authority: if shared { TO_AUTH } else { FROM_AUTH }.into(),
            to_school: TO.into(),
            to_authority: TO_AUTH.into(),
        }
    }

    fn actor(user_id: i64, role: Role, org: OrgRef) -> Actor {
        Actor { user_id, role, org }
    }
    fn school(code: &str) -> OrgRef {
        OrgRef::School(code.into())
    }
    fn auth(code: &str) -> OrgRef {
        OrgRef::Authority(code.into())
    }
    fn filer() -> Actor {
        actor(FILER, Role::SchoolAdmin, school(TO))
    }
    fn to_admin() -> Actor {
        actor(2, Role::SchoolAdmin, school(TO))
    }
    fn to_reviewer() -> Actor {
        actor(3, Role::SchoolReviewer, school(TO))
    }
    fn from_admin() -> Actor {
        actor(4, Role::SchoolAdmin, school(FROM))
    }
    fn from_reviewer() -> Actor {
        actor(5, Role::SchoolReviewer, school(FROM))
    }
    fn to_authority() -> Actor {
        actor(6, Role::AuthorityAdmin, auth(TO_AUTH))
    }
    fn from_authority() -> Actor {
        actor(7, Role::AuthorityAdmin, auth(FROM_AUTH))
    }
    fn stranger_reviewer() -> Actor {
        actor(8, Role::SchoolReviewer, school("1101010003"))
    }
    fn stranger_authority() -> Actor {
        actor(9, Role::AuthorityAdmin, auth("110101"))
    }
    fn national() -> Actor {
        actor(10, Role::NationalAdmin, OrgRef::National)
    }

    fn open(shared: bool) -> TransferState {
        new_transfer(default_chain(&parties(shared)), FILER, FROM, TO).0
    }

    fn approve() -> Action {
        Action::Review {
            approve: true,
            opinion: String::new(),
        }
    }
    fn reject(opinion: &str) -> Action {
        Action::Review {
            approve: false,
            opinion: opinion.into(),
        }
    }
    fn withdraw_for(reason: &str) -> Action {
        Action::Withdraw {
            reason: reason.into(),
        }
    }
    fn sent() -> Action {
        Action::PaperSent {
            note: "EMS 1234".into(),
        }
    }
    fn received() -> Action {
        Action::PaperReceived {
            note: String::new(),
        }
    }

    fn step(state: &mut TransferState, who: &Actor, action: &Action) -> Transition {
        let t = decide(state, who, action).unwrap_or_else(|e| panic!("{action:?} by {who:?}: {e}"));
        state.apply(&t);
        t
    }

    fn refused(state: &TransferState, who: &Actor, action: &Action) -> Error {
        decide(state, who, action).expect_err("should be refused")
    }

    /// Drives a transfer to `Approved` with each step's rightful reviewer.
    fn approved(shared: bool) -> TransferState {
        let mut s = open(shared);
        while s.status.is_review() {
            let who = rightful(&s);
            step(&mut s, &who, &approve());
        }
        assert_eq!(s.status, TransferStatus::Approved);
        s
    }

    fn rightful(s: &TransferState) -> Actor {
        match &s.current().unwrap().party {
            OrgRef::School(c) if c == TO => to_reviewer(),
            OrgRef::School(_) => from_reviewer(),
            OrgRef::Authority(c) if c == TO_AUTH => to_authority(),
            OrgRef::Authority(_) => from_authority(),
            OrgRef::National => unreachable!(),
        }
    }

    #[test]
    fn kinds_and_words() {
        assert_eq!(
            TransferKind::between("410105", "440106"),
            TransferKind::CrossProvince
        );
        assert_eq!(
            TransferKind::between("410105", "410302"),
            TransferKind::IntraProvince
        );
        assert_eq!(
            TransferKind::between("4", "410302"),
            TransferKind::CrossProvince
        );
        for k in [TransferKind::CrossProvince, TransferKind::IntraProvince] {
            assert_eq!(TransferKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(TransferKind::IntraProvince.label_zh(), "省内转学");
        assert_eq!(TransferStatus::ALL.len(), 11);
        for s in TransferStatus::ALL {
            assert_eq!(TransferStatus::parse(s.as_str()), Some(*s));
            let json = format!("\"{}\"", s.as_str());
            assert_eq!(debug_snake(s), json);
        }
        assert_eq!(TransferStatus::parse("approve"), None);
        assert_eq!(TransferStatus::Approved.label_zh(), "四方核办完成，待调档");
        assert_eq!(TransferStatus::Approved.short_label_zh(), "待调档");
        assert_eq!(Notice::parse("file_pulled"), Some(Notice::FilePulled));
        assert_eq!(Notice::PaperReceived.as_str(), "paper_received");
    }

    /// serde's snake_case must equal as_str (the API relies on both); checked through Debug.
    fn debug_snake(s: &TransferStatus) -> String {
        let mut out = String::from("\"");
        for (i, ch) in format!("{s:?}").chars().enumerate() {
            if ch.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        }
        out.push('"');
        out
    }

    #[test]
    fn status_predicates() {
        use TransferStatus as S;
        let terminal: Vec<_> = S::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [&S::Completed, &S::Rejected, &S::Withdrawn, &S::Closed]
        );
        let review: Vec<_> = S::ALL.iter().filter(|s| s.is_review()).collect();
        assert_eq!(review.len(), 4);
        let locking: Vec<_> = S::ALL.iter().filter(|s| s.locks_student()).collect();
        assert_eq!(locking.len(), 5);
        assert!(S::Approved.locks_student() && !S::FilePulled.locks_student());
    }

    #[test]
    fn four_step_chain_when_authorities_differ() {
        let chain = default_chain(&parties(false));
        let codes: Vec<_> = chain.iter().map(StepSpec::code).collect();
        assert_eq!(
            codes,
            ["in_school", "in_authority", "out_school", "out_authority"]
        );
        let statuses: Vec<_> = chain.iter().map(StepSpec::status).collect();
        assert_eq!(
            statuses,
            [
                TransferStatus::InSchoolReview,
                TransferStatus::InAuthorityReview,
                TransferStatus::OutSchoolReview,
                TransferStatus::OutAuthorityReview
            ]
        );
        let labels: Vec<_> = chain.iter().map(StepSpec::party_label_zh).collect();
        assert_eq!(
            labels,
            [
                "转入学校",
                "转入学籍主管部门",
                "转出学校",
                "转出学籍主管部门"
            ]
        );
        assert_eq!(chain[1].party, auth(TO_AUTH));
        assert_eq!(chain[3].party, auth(FROM_AUTH));
        assert_eq!(chain[2].party, school(FROM));
    }

    #[test]
    fn shared_authority_approves_once_after_both_schools() {
        let chain = default_chain(&parties(true));
        let codes: Vec<_> = chain.iter().map(StepSpec::code).collect();
        assert_eq!(codes, ["in_school", "out_school", "shared_authority"]);
        assert!(chain[2].shared && chain[2].side == Side::Out);
        assert_eq!(chain[2].party, auth(TO_AUTH));
        assert_eq!(chain[2].party_label_zh(), "转入、转出学籍主管部门");
        assert_eq!(chain[2].status(), TransferStatus::OutAuthorityReview);

        let mut s = open(true);
        step(&mut s, &to_reviewer(), &approve());
        assert_eq!(s.status, TransferStatus::OutSchoolReview);
        let e = refused(&s, &to_authority(), &approve());
        assert_eq!(e.code, ErrorCode::NotYourTurn);
        step(&mut s, &from_reviewer(), &approve());
        assert_eq!(s.status, TransferStatus::OutAuthorityReview);
        let t = step(&mut s, &to_authority(), &approve());
        assert_eq!(t.to, TransferStatus::Approved);
        assert_eq!(t.current_step, 3);
    }

    #[test]
    fn leader_steps_words() {
        let leader = StepSpec {
            role: StepRole::LeaderConfirm,
            ..StepSpec::authority(Side::In, TO_AUTH)
        };
        assert_eq!(leader.code(), "in_authority_leader");
        assert_eq!(leader.status(), TransferStatus::InAuthorityReview);
        assert_eq!(leader.waiting_zh(), "待转入学籍主管部门领导确认");
        let out = StepSpec {
            side: Side::Out,
            ..leader.clone()
        };
        assert_eq!(out.code(), "out_authority_leader");
        assert_eq!(out.status(), TransferStatus::OutAuthorityReview);
        let shared = StepSpec {
            shared: true,
            ..out
        };
        assert_eq!(shared.code(), "shared_authority_leader");
    }

    #[test]
    fn leader_confirmation_is_taken_by_the_authority() {
        let mut chain = default_chain(&parties(false));
        chain.insert(
            2,
            StepSpec {
                role: StepRole::LeaderConfirm,
                ..StepSpec::authority(Side::In, TO_AUTH)
            },
        );
        let (mut s, _) = new_transfer(chain, FILER, FROM, TO);
        step(&mut s, &to_reviewer(), &approve());
        let t = step(&mut s, &to_authority(), &approve());
        assert_eq!(t.to, TransferStatus::InAuthorityReview);
        assert_eq!(t.notify[0], (auth(TO_AUTH), Notice::StepWaiting));
        assert_eq!(s.current_step, 2);
        let e = refused(&s, &from_reviewer(), &approve());
        assert_eq!(e.code, ErrorCode::NotYourTurn);
        assert!(e.message.contains("待转入学籍主管部门领导确认"), "{e}");
        step(&mut s, &to_authority(), &approve());
        assert_eq!(s.status, TransferStatus::OutSchoolReview);
    }

    #[test]
    fn new_transfer_waits_for_the_receiving_school() {
        let (s, notify) = new_transfer(default_chain(&parties(false)), FILER, FROM, TO);
        assert_eq!(s.status, TransferStatus::InSchoolReview);
        assert_eq!(s.current_step, 0);
        assert_eq!(s.filed_by, FILER);
        assert_eq!((s.to_school.as_str(), s.from_school.as_str()), (TO, FROM));
        assert_eq!(notify, [(school(TO), Notice::StepWaiting)]);
        assert_eq!(s.waiting_on(), Some(school(TO)));

        let (empty, notify) = new_transfer(Vec::new(), FILER, FROM, TO);
        assert_eq!(empty.status, TransferStatus::Approved);
        assert_eq!(empty.current_step, 0);
        assert_eq!(notify.len(), 2);
    }

    #[test]
    fn the_whole_flow_with_notifications() {
        let mut s = open(false);
        let t = step(&mut s, &to_reviewer(), &approve());
        assert_eq!(t.to, TransferStatus::InAuthorityReview);
        assert_eq!((t.current_step, t.decided_step), (1, Some(0)));
        assert_eq!(
            t.notify,
            [
                (auth(TO_AUTH), Notice::StepWaiting),
                (school(TO), Notice::StepApproved)
            ]
        );
        assert!(!t.moves_enrollment && !t.unlocks_student);

        let t = step(&mut s, &to_authority(), &approve());
        assert_eq!(t.to, TransferStatus::OutSchoolReview);
        assert_eq!(t.notify[0], (school(FROM), Notice::StepWaiting));
        let t = step(&mut s, &from_reviewer(), &approve());
        assert_eq!(t.to, TransferStatus::OutAuthorityReview);
        assert_eq!(s.waiting_on(), Some(auth(FROM_AUTH)));
        let t = step(&mut s, &from_authority(), &approve());
        assert_eq!(t.to, TransferStatus::Approved);
        assert_eq!((t.current_step, t.decided_step), (4, Some(3)));
        assert_eq!(
            t.notify,
            [
                (school(TO), Notice::Approved),
                (school(FROM), Notice::Approved)
            ]
        );
        assert!(s.status.locks_student());
        assert_eq!(s.current(), None);
        assert_eq!(s.waiting_on(), Some(school(TO)));

        let t = step(&mut s, &to_admin(), &Action::PullFile);
        assert_eq!(t.to, TransferStatus::FilePulled);
        assert!(t.moves_enrollment && t.unlocks_student);
        assert_eq!(t.notify, [(school(FROM), Notice::FilePulled)]);
        assert_eq!(s.waiting_on(), Some(school(FROM)));

        let t = step(&mut s, &from_admin(), &sent());
        assert_eq!(t.to, TransferStatus::PaperSent);
        assert_eq!(t.notify, [(school(TO), Notice::PaperSent)]);
        let t = step(&mut s, &to_reviewer(), &received());
        assert_eq!(t.to, TransferStatus::Completed);
        assert_eq!(t.notify, [(school(FROM), Notice::PaperReceived)]);
        assert!(!t.moves_enrollment && !t.unlocks_student);
        assert_eq!(s.waiting_on(), None);
    }

    #[test]
    fn terminal_states_refuse_every_action() {
        let mut done = approved(false);
        step(&mut done, &to_admin(), &Action::PullFile);
        step(&mut done, &from_admin(), &sent());
        step(&mut done, &to_admin(), &received());
        let mut rejected = open(false);
        step(&mut rejected, &to_reviewer(), &reject("学位已满"));
        let mut withdrawn = open(false);
        step(&mut withdrawn, &to_admin(), &withdraw_for("家长撤回申请"));
        for s in [done, rejected, withdrawn] {
            for a in [
                approve(),
                reject("x"),
                withdraw_for("x"),
                Action::PullFile,
                sent(),
                received(),
            ] {
                for who in [
                    to_reviewer(),
                    to_admin(),
                    from_admin(),
                    to_authority(),
                    national(),
                ] {
                    let e = refused(&s, &who, &a);
                    assert_eq!(e.code, ErrorCode::Conflict);
                    assert!(
                        e.message.contains("已结束") && e.message.contains(s.status.label_zh())
                    );
                }
            }
        }
    }

    #[test]
    fn review_outside_review_phase_is_a_conflict() {
        let s = approved(false);
        let e = refused(&s, &from_authority(), &approve());
        assert_eq!(e.code, ErrorCode::Conflict);
        let broken = TransferState {
            current_step: 4,
            status: TransferStatus::OutAuthorityReview,
            ..open(false)
        };
        assert_eq!(
            refused(&broken, &from_authority(), &approve()).code,
            ErrorCode::Conflict
        );
    }

    #[test]
    fn school_step_needs_the_reviewer_not_the_admin_nor_the_filer() {
        let s = open(false);
        let e = refused(&s, &to_admin(), &approve());
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(e.message.contains("审核员"));
        let e = refused(&s, &filer(), &approve());
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(e.message.contains("本人"), "{e}");
        // Even a filer who holds the reviewer role never reviews their own application.
        let (own, _) = new_transfer(default_chain(&parties(false)), 3, FROM, TO);
        assert_eq!(
            refused(&own, &to_reviewer(), &approve()).code,
            ErrorCode::Forbidden
        );
        // An authority account at a school step of its own org is impossible; a wrong role at the
        // right org is refused too.
        let odd = actor(11, Role::AuthorityAdmin, school(TO));
        assert_eq!(refused(&s, &odd, &approve()).code, ErrorCode::Forbidden);
    }

    #[test]
    fn authority_step_needs_an_authority_account() {
        let mut s = open(false);
        step(&mut s, &to_reviewer(), &approve());
        let odd = actor(12, Role::SchoolReviewer, auth(TO_AUTH));
        assert_eq!(refused(&s, &odd, &approve()).code, ErrorCode::Forbidden);
        step(&mut s, &to_authority(), &approve());
        assert_eq!(s.status, TransferStatus::OutSchoolReview);
    }

    #[test]
    fn other_parties_are_told_it_is_not_their_turn() {
        let mut s = open(false);
        step(&mut s, &to_reviewer(), &approve());
        step(&mut s, &to_authority(), &approve());
        // Now the sending school's turn: the sending authority comes later.
        let e = refused(&s, &from_authority(), &approve());
        assert_eq!(e.code, ErrorCode::NotYourTurn);
        assert_eq!(e.message, "当前待转出学校审核，尚未轮到本单位");
        // Parties whose step is behind clicked twice or on a stale page: the state changed.
        for who in [to_reviewer(), to_admin(), to_authority()] {
            let e = refused(&s, &who, &approve());
            assert_eq!(e.code, ErrorCode::Conflict, "{who:?}");
            assert!(e.message.contains("已办理过"), "{}", e.message);
        }
        // The sending school's admin is at the right org but not a reviewer.
        assert_eq!(
            refused(&s, &from_admin(), &approve()).code,
            ErrorCode::Forbidden
        );
        // The sending school before its turn.
        let fresh = open(false);
        assert_eq!(
            refused(&fresh, &from_reviewer(), &approve()).code,
            ErrorCode::NotYourTurn
        );
    }

    #[test]
    fn strangers_and_the_national_admin_never_review() {
        let s = open(false);
        for who in [stranger_reviewer(), stranger_authority(), national()] {
            assert_eq!(refused(&s, &who, &approve()).code, ErrorCode::Forbidden);
        }
        let s = approved(false);
        for a in [Action::PullFile, withdraw_for("x"), sent(), received()] {
            assert_eq!(refused(&s, &national(), &a).code, ErrorCode::Forbidden);
        }
    }

    #[test]
    fn rejection_needs_an_opinion_and_ends_the_flow() {
        let mut s = open(false);
        step(&mut s, &to_reviewer(), &approve());
        for blank in ["", "  \n\t"] {
            let e = refused(&s, &to_authority(), &reject(blank));
            assert_eq!(e.code, ErrorCode::ReasonRequired);
            assert_eq!(e.field, Some("opinion"));
            assert_eq!(e.message, "不同意时须填写审核意见");
        }
        let t = step(&mut s, &to_authority(), &reject("不符合本地转学条件"));
        assert_eq!(t.to, TransferStatus::Rejected);
        assert_eq!(t.decided_step, Some(1));
        assert_eq!(t.current_step, 4);
        assert!(t.unlocks_student && !t.moves_enrollment);
        assert_eq!(
            t.notify,
            [
                (school(TO), Notice::Rejected),
                (school(FROM), Notice::Rejected)
            ]
        );
        assert!(!s.status.locks_student());
    }

    #[test]
    fn wrong_actor_is_refused_before_a_missing_opinion() {
        let s = open(false);
        assert_eq!(
            refused(&s, &from_reviewer(), &reject("")).code,
            ErrorCode::NotYourTurn
        );
    }

    #[test]
    fn withdrawal_by_the_receiving_school_until_approval_ends() {
        let mut s = open(false);
        step(&mut s, &to_reviewer(), &approve());
        step(&mut s, &to_authority(), &approve());
        for who in [
            from_admin(),
            from_reviewer(),
            to_authority(),
            stranger_reviewer(),
            national(),
        ] {
            assert_eq!(
                refused(&s, &who, &withdraw_for("x")).code,
                ErrorCode::Forbidden,
                "{who:?}"
            );
        }
        let e = refused(&s, &to_admin(), &withdraw_for(" "));
        assert_eq!(e.code, ErrorCode::ReasonRequired);
        assert_eq!(e.field, Some("reason"));
        let t = step(&mut s, &to_admin(), &withdraw_for("家长撤回申请"));
        assert_eq!(t.to, TransferStatus::Withdrawn);
        assert!(t.unlocks_student && !t.moves_enrollment);
        assert_eq!(t.decided_step, None);
        // The waiting party is the sending school itself: one notice.
        assert_eq!(t.notify, [(school(FROM), Notice::Withdrawn)]);

        let mut s = open(false);
        step(&mut s, &to_reviewer(), &approve());
        let t = step(&mut s, &to_reviewer(), &withdraw_for("学生留在原校"));
        assert_eq!(
            t.notify,
            [
                (auth(TO_AUTH), Notice::Withdrawn),
                (school(FROM), Notice::Withdrawn)
            ]
        );

        let s = approved(false);
        let e = refused(&s, &to_admin(), &withdraw_for("x"));
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.starts_with("四方审核已完成，不能撤销"), "{e}");
    }

    #[test]
    fn pull_file_by_the_receiving_school_after_approval_only() {
        let s = open(false);
        let e = refused(&s, &to_admin(), &Action::PullFile);
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.starts_with("四方审核尚未完成，不能调档"), "{e}");
        let mut s = approved(true);
        for who in [
            from_admin(),
            from_reviewer(),
            to_authority(),
            stranger_reviewer(),
        ] {
            assert_eq!(
                refused(&s, &who, &Action::PullFile).code,
                ErrorCode::Forbidden
            );
        }
        step(&mut s, &to_reviewer(), &Action::PullFile);
        assert_eq!(
            refused(&s, &to_admin(), &Action::PullFile).code,
            ErrorCode::Conflict
        );
    }

    #[test]
    fn paper_file_handoff() {
        let mut s = approved(false);
        // Before the pull.
        assert_eq!(
            refused(&s, &from_admin(), &sent()).code,
            ErrorCode::Conflict
        );
        assert_eq!(
            refused(&s, &to_admin(), &received()).code,
            ErrorCode::Conflict
        );
        step(&mut s, &to_admin(), &Action::PullFile);
        // Only the sending school sends.
        for who in [
            to_admin(),
            to_reviewer(),
            from_authority(),
            stranger_reviewer(),
        ] {
            assert_eq!(refused(&s, &who, &sent()).code, ErrorCode::Forbidden);
        }
        assert_eq!(
            refused(&s, &to_admin(), &received()).code,
            ErrorCode::Conflict
        );
        step(&mut s, &from_reviewer(), &sent());
        assert_eq!(
            refused(&s, &from_admin(), &sent()).code,
            ErrorCode::Conflict
        );
        // Only the receiving school receives.
        for who in [from_admin(), from_reviewer(), to_authority()] {
            assert_eq!(refused(&s, &who, &received()).code, ErrorCode::Forbidden);
        }
        step(&mut s, &to_admin(), &received());
        assert_eq!(s.status, TransferStatus::Completed);
    }

    #[test]
    fn dedupe_keeps_the_first_notice_per_org() {
        let list = dedupe(vec![
            (school(TO), Notice::StepWaiting),
            (school(TO), Notice::StepApproved),
            (school(FROM), Notice::Approved),
        ]);
        assert_eq!(
            list,
            [
                (school(TO), Notice::StepWaiting),
                (school(FROM), Notice::Approved)
            ]
        );
    }

    // ---- property tests over random action sequences ----

    /// Who acts: `Expected` resolves at run time to the rightful actor of the current state (so
    /// that random runs get deep), `Fixed` picks from every participant.
    #[derive(Debug, Clone)]
    enum Pick {
        Expected,
        Fixed(usize),
    }

    fn everyone() -> Vec<Actor> {
        vec![
            filer(),
            to_admin(),
            to_reviewer(),
            from_admin(),
            from_reviewer(),
            to_authority(),
            from_authority(),
            actor(13, Role::AuthorityAdmin, auth(TO_AUTH)),
            stranger_reviewer(),
            actor(14, Role::SchoolAdmin, school("1101010003")),
            stranger_authority(),
            national(),
            other_to_reviewer(),
        ]
    }

    fn expected_actor(s: &TransferState) -> Actor {
        let who = match s.status {
            st if st.is_review() => rightful(s),
            TransferStatus::FilePulled => from_admin(),
            _ => to_reviewer(),
        };
        if who.user_id == s.filed_by {
            // The filer holds the reviewer role: another reviewer of the school takes the step.
            other_to_reviewer()
        } else {
            who
        }
    }

    fn other_to_reviewer() -> Actor {
        actor(15, Role::SchoolReviewer, school(TO))
    }

    fn action_strategy() -> impl Strategy<Value = Action> {
        let text = prop_oneof![
            Just(String::new()),
            Just("  ".to_owned()),
            Just("理由".to_owned())
        ];
        prop_oneof![
            6 => text.clone().prop_map(|opinion| Action::Review { approve: true, opinion }),
            1 => text.clone().prop_map(|opinion| Action::Review { approve: false, opinion }),
            1 => text.clone().prop_map(|reason| Action::Withdraw { reason }),
            2 => Just(Action::PullFile),
            2 => text.clone().prop_map(|note| Action::PaperSent { note }),
            2 => text.prop_map(|note| Action::PaperReceived { note }),
        ]
    }

    fn pick_strategy() -> impl Strategy<Value = Pick> {
        prop_oneof![
            3 => Just(Pick::Expected),
            2 => (0..everyone().len()).prop_map(Pick::Fixed),
        ]
    }

    /// Default chains for shared or separate authorities, with leader confirmations optionally
    /// inserted after authority steps, and the filer optionally a reviewer.
    fn chain_strategy() -> impl Strategy<Value = (Vec<StepSpec>, i64)> {
        (
            any::<bool>(),
            any::<[bool; 4]>(),
            prop_oneof![Just(FILER), Just(3i64)],
        )
            .prop_map(|(shared, leaders, filed_by)| {
                let mut chain = Vec::new();
                for (i, s) in default_chain(&parties(shared)).into_iter().enumerate() {
                    let is_authority = s.role == StepRole::AuthorityReview;
                    chain.push(s.clone());
                    if is_authority && leaders[i] {
                        chain.push(StepSpec {
                            role: StepRole::LeaderConfirm,
                            ..s
                        });
                    }
                }
                (chain, filed_by)
            })
    }

    fn rank(s: TransferStatus) -> u8 {
        use TransferStatus as S;
        match s {
            S::InSchoolReview => 0,
            S::InAuthorityReview => 1,
            S::OutSchoolReview => 2,
            S::OutAuthorityReview => 3,
            S::Approved => 4,
            S::FilePulled => 5,
            S::PaperSent => 6,
            S::Completed | S::Rejected | S::Withdrawn | S::Closed => 7,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_runs_keep_the_invariants(
            (chain, filed_by) in chain_strategy(),
            moves in prop::collection::vec((pick_strategy(), action_strategy()), 1..60),
        ) {
            let people = everyone();
            let (mut state, first) = new_transfer(chain.clone(), filed_by, FROM, TO);
            prop_assert_eq!(&first, &vec![(chain[0].party.clone(), Notice::StepWaiting)]);
            // The model: one enrollment per school, approvals by step.
            let mut enrolled_from = 1u8;
            let mut enrolled_to = 0u8;
            let mut approved = vec![false; chain.len()];
            let mut moved = 0;

            for (pick, action) in moves {
                let who = match pick {
                    Pick::Expected => expected_actor(&state),
                    Pick::Fixed(i) => people[i].clone(),
                };
                let before = state.clone();
                match decide(&state, &who, &action) {
                    Err(e) => {
                        prop_assert!(!e.message.is_empty());
                        if before.status.is_terminal() {
                            prop_assert_eq!(e.code, ErrorCode::Conflict);
                        }
                    }
                    Ok(t) => {
                        prop_assert!(!before.status.is_terminal(), "terminal state changed");
                        prop_assert!(who.role != Role::NationalAdmin);
                        prop_assert!(rank(t.to) >= rank(before.status), "{:?} → {:?}", before.status, t.to);
                        prop_assert!(t.to != before.status || t.current_step > before.current_step);
                        if let Action::Review { approve, .. } = &action {
                            let i = t.decided_step.expect("a review decides a step");
                            prop_assert_eq!(i, before.current_step);
                            prop_assert_eq!(&who.org, &chain[i].party);
                            prop_assert!(who.user_id != filed_by);
                            prop_assert!(!approved[i]);
                            if *approve {
                                approved[i] = true;
                                prop_assert_eq!(t.current_step, i + 1);
                                let expected = chain.get(i + 1).map_or(TransferStatus::Approved, StepSpec::status);
                                prop_assert_eq!(t.to, expected);
                            } else {
                                prop_assert_eq!(t.to, TransferStatus::Rejected);
                            }
                        } else {
                            prop_assert_eq!(t.decided_step, None);
                            prop_assert!(matches!(&who.org, OrgRef::School(c) if c == TO || c == FROM));
                        }
                        if t.moves_enrollment {
                            prop_assert!(approved.iter().all(|a| *a), "moved before every approval");
                            prop_assert_eq!(moved, 0);
                            moved += 1;
                            enrolled_from -= 1;
                            enrolled_to += 1;
                        }
                        if matches!(t.to, TransferStatus::Rejected | TransferStatus::Withdrawn | TransferStatus::FilePulled) {
                            prop_assert!(t.unlocks_student);
                            prop_assert!(!t.to.locks_student());
                        }
                        let mut orgs: Vec<_> = t.notify.iter().map(|(o, _)| o.clone()).collect();
                        let n = orgs.len();
                        orgs.dedup();
                        prop_assert_eq!(orgs.len(), n, "one notice per org");
                        prop_assert!(t.notify.iter().all(|(o, _)| *o != OrgRef::National));
                        state.apply(&t);
                    }
                }
                prop_assert_eq!(enrolled_from + enrolled_to, 1, "enrolled at exactly one school");
                prop_assert_eq!(enrolled_to == 1, matches!(state.status,
                    TransferStatus::FilePulled | TransferStatus::PaperSent | TransferStatus::Completed));
                prop_assert!(moved <= 1);
                prop_assert_eq!(state.current_step <= chain.len(), true);
                prop_assert_eq!(state.status.is_review(), state.current().is_some());
            }
            // Once terminal, everything by everyone is refused.
            if state.status.is_terminal() {
                for who in &people {
                    for a in [approve(), reject("x"), withdraw_for("x"), Action::PullFile, sent(), received()] {
                        prop_assert_eq!(decide(&state, who, &a).unwrap_err().code, ErrorCode::Conflict);
                    }
                }
            }
        }
    }
}
