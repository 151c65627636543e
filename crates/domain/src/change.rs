//! 学籍异动 and 关键数据变更: one machinery, the change request (异动申请).
//!
//! A school's administrator (学籍管理员) files a request for one of its students; the school's
//! reviewer (审核员) confirms it; the school's supervising authority (学籍主管部门) approves it,
//! and the effect is applied in the same transaction. A refusal (不同意) needs an opinion and ends
//! the request; the filing school's administrator may withdraw it while it is pending. While a
//! request is pending the student is locked (在办业务), like a transfer.
//!
//! This module holds the pure rules: which kind applies to which student ([`check_kind`]), and who
//! may act in which state ([`decide`]). The application layer stores and applies them.
//!
//! Rules chosen where the Measures (《中小学生学籍管理办法》) leave room, documented here:
//! - 休学 `suspension`: from an enrolled student, with a period (from ≤ until) of at most one year;
//!   a longer absence is a second request after the first ends.
//! - 复学 `resumption`: from 休学, or from 辍学 when the student is brought back (劝返复学); into
//!   the former grade or a neighbouring grade of the same 学段 that the school offers.
//! - 退学 `withdrawal`: 高中 grades only (compulsory education cannot be left by withdrawal).
//! - 辍学 `dropout`: 义务教育 grades only (小学, 初中); carries the report duty (劝返, 控辍保学): the
//!   authority is notified when it is filed and again when it is approved.
//! - 死亡 `death`: from enrolled, suspended or abroad.
//! - 出境学习 `abroad` from enrolled; 回国复学 `return_from_abroad` only from abroad, into the former
//!   grade or a neighbouring one of the same 学段.
//! - 留级 `repeat_grade` (grade − 1) and 跳级 `skip_grade` (grade + 1): enrolled, and only within the
//!   same 学段 at a grade the school offers (crossing 小学/初中 is 升学, not 跳级).
//! - 转入特教/工读 `special_education`: 义务教育 students only (special-education schools and 专门学校
//!   serve compulsory-education ages), enrolled, into a class of a 特殊教育学校 or 专门学校 (工读学校)
//!   of the same province; placement is decided by the authority (《预防未成年人犯罪法》 2020,
//!   专门教育), which is why it is a change request and not a transfer.
//! - 关键数据变更 `key_change`: name, identity document, gender, birth date; evidence required;
//!   at least one value must differ from the record.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::access::{Actor, OrgRef, Role};
use crate::error::{Error, ErrorCode};
use crate::ids::{Grade, Stage};

/// What a request changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Suspension,
    Resumption,
    Withdrawal,
    Dropout,
    Death,
    Abroad,
    ReturnFromAbroad,
    RepeatGrade,
    SkipGrade,
    SpecialEducation,
    KeyChange,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 11] = [
        Self::Suspension,
        Self::Resumption,
        Self::Withdrawal,
        Self::Dropout,
        Self::Death,
        Self::Abroad,
        Self::ReturnFromAbroad,
        Self::RepeatGrade,
        Self::SkipGrade,
        Self::SpecialEducation,
        Self::KeyChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspension => "suspension",
            Self::Resumption => "resumption",
            Self::Withdrawal => "withdrawal",
            Self::Dropout => "dropout",
            Self::Death => "death",
            Self::Abroad => "abroad",
            Self::ReturnFromAbroad => "return_from_abroad",
            Self::RepeatGrade => "repeat_grade",
            Self::SkipGrade => "skip_grade",
            Self::SpecialEducation => "special_education",
            Self::KeyChange => "key_change",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Suspension => "休学",
            Self::Resumption => "复学",
            Self::Withdrawal => "退学",
            Self::Dropout => "辍学",
            Self::Death => "死亡",
            Self::Abroad => "出境学习",
            Self::ReturnFromAbroad => "回国复学",
            Self::RepeatGrade => "留级",
            Self::SkipGrade => "跳级",
            Self::SpecialEducation => "转入特教/工读",
            Self::KeyChange => "关键数据变更",
        }
    }

    /// The `open_businesses.kind` that locks the student while the request is pending.
    pub fn business(self) -> &'static str {
        match self {
            Self::KeyChange => "key_change",
            _ => "status_change",
        }
    }

    /// Evidence (佐证材料) is required to file.
    pub fn needs_evidence(self) -> bool {
        self == Self::KeyChange
    }
}

/// 学籍状态, with the API words `students::status_label_zh` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudentStatus {
    Enrolled,
    Suspended,
    TransferredOut,
    Graduated,
    DroppedOut,
    Withdrawn,
    Deceased,
    Abroad,
}

impl StudentStatus {
    pub const ALL: [StudentStatus; 8] = [
        Self::Enrolled,
        Self::Suspended,
        Self::TransferredOut,
        Self::Graduated,
        Self::DroppedOut,
        Self::Withdrawn,
        Self::Deceased,
        Self::Abroad,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrolled => "enrolled",
            Self::Suspended => "suspended",
            Self::TransferredOut => "transferred_out",
            Self::Graduated => "graduated",
            Self::DroppedOut => "dropped_out",
            Self::Withdrawn => "withdrawn",
            Self::Deceased => "deceased",
            Self::Abroad => "abroad",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// 待学校审核 (the school's reviewer).
    PendingSchool,
    /// 待学籍主管部门审批.
    PendingAuthority,
    /// 已批准并生效: approved by the authority, effect applied in the same transaction.
    Applied,
    Refused,
    Withdrawn,
}

impl ChangeStatus {
    pub const ALL: [ChangeStatus; 5] = [
        Self::PendingSchool,
        Self::PendingAuthority,
        Self::Applied,
        Self::Refused,
        Self::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingSchool => "pending_school",
            Self::PendingAuthority => "pending_authority",
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::PendingSchool => "待学校审核",
            Self::PendingAuthority => "待学籍主管部门审批",
            Self::Applied => "已批准并生效",
            Self::Refused => "不同意（已终止）",
            Self::Withdrawn => "已撤销",
        }
    }

    pub fn is_pending(self) -> bool {
        matches!(self, Self::PendingSchool | Self::PendingAuthority)
    }

    /// The index of the waiting step (0 school, 1 authority).
    pub fn step(self) -> Option<usize> {
        match self {
            Self::PendingSchool => Some(0),
            Self::PendingAuthority => Some(1),
            _ => None,
        }
    }
}

/// The two review steps every request goes through, in order.
pub const STEP_CODES: [&str; 2] = ["school", "authority"];

/// 特殊教育学校 and 专门学校 (formerly 工读学校): the school types a `special_education` request
/// may place a student in.
pub fn is_special_school_type(school_type: &str) -> bool {
    matches!(school_type.trim(), "特殊教育学校" | "专门学校" | "工读学校")
}

/// Longest 休学 period of one request, in days (one year, a leap day included).
pub const MAX_SUSPENSION_DAYS: i64 = 366;

/// The student as the rules need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentFacts {
    pub status: StudentStatus,
    pub grade: Option<Grade>,
    /// Grades the student's school offers.
    pub school_grades: Vec<Grade>,
}

/// What the request asks beyond its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindParams {
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    /// Target grade (复学 / 回国复学; implied for 留级 / 跳级).
    pub grade: Option<Grade>,
    /// 特教/工读: the target school's type, grades and province (first two digits) beside the
    /// student's school's province.
    pub target_school_type: Option<String>,
    pub target_school_grades: Vec<Grade>,
    pub same_province: bool,
}

/// What approval does to the student.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// The status afterwards.
    pub status: StudentStatus,
    /// The grade afterwards (None: unchanged).
    pub grade: Option<Grade>,
    /// The student leaves the school's roll (退学, 辍学, 死亡, 出境): the enrollment ends with the
    /// new status and the class seat is freed.
    pub ends_enrollment: bool,
    /// The enrollment moves to another school (特教/工读).
    pub moves_school: bool,
}

fn refuse(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::PolicyViolation, message)
}

fn require_status(
    kind: ChangeKind,
    s: StudentStatus,
    allowed: &[StudentStatus],
) -> Result<(), Error> {
    if allowed.contains(&s) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|a| status_zh(*a)).collect();
    Err(refuse(format!(
        "{}仅适用于学籍状态为“{}”的学生，该学生当前为“{}”",
        kind.label_zh(),
        names.join("”或“"),
        status_zh(s)
    ))
    .at("kind"))
}

/// Chinese label of a status (the same words as the students list).
pub fn status_zh(s: StudentStatus) -> &'static str {
    match s {
        StudentStatus::Enrolled => "在籍",
        StudentStatus::Suspended => "休学",
        StudentStatus::TransferredOut => "已转出",
        StudentStatus::Graduated => "毕业",
        StudentStatus::DroppedOut => "辍学",
        StudentStatus::Withdrawn => "退学",
        StudentStatus::Deceased => "死亡",
        StudentStatus::Abroad => "出境学习",
    }
}

fn current_grade(f: &StudentFacts) -> Result<Grade, Error> {
    f.grade
        .ok_or_else(|| refuse("该学生没有年级信息，请先核对学籍").at("kind"))
}

fn is_compulsory(g: Grade) -> bool {
    matches!(g.stage(), Stage::Primary | Stage::Junior)
}

/// A grade `delta` steps from `g` within the same 学段, if there is one.
pub fn neighbour(g: Grade, delta: i8) -> Option<Grade> {
    let n = g.number() as i16 + delta as i16;
    Grade::ALL
        .into_iter()
        .find(|x| x.number() as i16 == n && x.stage() == g.stage())
}

/// A target grade for 复学 / 回国复学: the former grade, or a neighbouring one of the same 学段.
fn return_grade(f: &StudentFacts, asked: Option<Grade>) -> Result<Option<Grade>, Error> {
    let Some(target) = asked else { return Ok(None) };
    if let Some(before) = f.grade {
        let ok = target == before
            || neighbour(before, -1) == Some(target)
            || neighbour(before, 1) == Some(target);
        if !ok {
            return Err(Error::validation(
                "to_grade",
                format!(
                    "复学年级应为原年级（{}）或同一学段的相邻年级",
                    before.label_zh()
                ),
            ));
        }
    }
    if !f.school_grades.contains(&target) {
        return Err(Error::validation(
            "to_grade",
            format!("本校不设{}", target.label_zh()),
        ));
    }
    Ok(Some(target))
}

/// Checks that `kind` applies to this student and answers its effect. Key-data changes are
/// checked by the application layer (identity number, duplicate check) and have no status effect.
pub fn check_kind(kind: ChangeKind, f: &StudentFacts, p: &KindParams) -> Result<Effect, Error> {
    use StudentStatus as S;
    let effect = |status, grade, ends_enrollment| Effect {
        status,
        grade,
        ends_enrollment,
        moves_school: false,
    };
    match kind {
        ChangeKind::Suspension => {
            require_status(kind, f.status, &[S::Enrolled])?;
            let from = p
                .from
                .ok_or_else(|| Error::validation("from_date", "请填写休学起始日期"))?;
            let until = p
                .until
                .ok_or_else(|| Error::validation("until_date", "请填写休学截止日期"))?;
            if until < from {
                return Err(Error::validation(
                    "until_date",
                    "休学截止日期不能早于起始日期",
                ));
            }
            if (until - from).num_days() > MAX_SUSPENSION_DAYS {
                return Err(Error::validation(
                    "until_date",
                    "一次休学期限不超过一年；期满仍需休学的，请在期满后另行申请",
                ));
            }
            Ok(effect(S::Suspended, None, false))
        }
        ChangeKind::Resumption => {
            // A dropout brought back (劝返复学) resumes too: that is what 控辍保学 aims at.
            require_status(kind, f.status, &[S::Suspended, S::DroppedOut])?;
            Ok(effect(S::Enrolled, return_grade(f, p.grade)?, false))
        }
        ChangeKind::Withdrawal => {
            require_status(kind, f.status, &[S::Enrolled, S::Suspended])?;
            let g = current_grade(f)?;
            if g.stage() != Stage::Senior {
                return Err(refuse(format!(
                    "退学仅适用于高中学生；{}学生处于义务教育阶段，不能办理退学",
                    g.label_zh()
                ))
                .at("kind"));
            }
            Ok(effect(S::Withdrawn, None, true))
        }
        ChangeKind::Dropout => {
            require_status(kind, f.status, &[S::Enrolled, S::Suspended])?;
            let g = current_grade(f)?;
            if !is_compulsory(g) {
                return Err(refuse(
                    "辍学登记适用于义务教育阶段（小学、初中）学生；高中学生请办理退学",
                )
                .at("kind"));
            }
            Ok(effect(S::DroppedOut, None, true))
        }
        ChangeKind::Death => {
            require_status(kind, f.status, &[S::Enrolled, S::Suspended, S::Abroad])?;
            Ok(effect(S::Deceased, None, true))
        }
        ChangeKind::Abroad => {
            require_status(kind, f.status, &[S::Enrolled])?;
            Ok(effect(S::Abroad, None, true))
        }
        ChangeKind::ReturnFromAbroad => {
            require_status(kind, f.status, &[S::Abroad])?;
            Ok(effect(S::Enrolled, return_grade(f, p.grade)?, false))
        }
        ChangeKind::RepeatGrade | ChangeKind::SkipGrade => {
            require_status(kind, f.status, &[S::Enrolled])?;
            let g = current_grade(f)?;
            let delta = if kind == ChangeKind::RepeatGrade {
                -1
            } else {
                1
            };
            let Some(target) = neighbour(g, delta) else {
                return Err(refuse(format!(
                    "{}学生不能{}：{}只在同一学段内办理",
                    g.label_zh(),
                    kind.label_zh(),
                    kind.label_zh()
                ))
                .at("kind"));
            };
            if !f.school_grades.contains(&target) {
                return Err(refuse(format!(
                    "本校不设{}，不能{}",
                    target.label_zh(),
                    kind.label_zh()
                ))
                .at("kind"));
            }
            Ok(effect(S::Enrolled, Some(target), false))
        }
        ChangeKind::SpecialEducation => {
            require_status(kind, f.status, &[S::Enrolled])?;
            let g = current_grade(f)?;
            if !is_compulsory(g) {
                return Err(refuse("转入特教/工读仅适用于义务教育阶段学生").at("kind"));
            }
            let Some(t) = p.target_school_type.as_deref() else {
                return Err(Error::validation(
                    "to_class_id",
                    "请选择转入的特殊教育学校或专门学校的班级",
                ));
            };
            if !is_special_school_type(t) {
                return Err(
                    refuse("转入学校须为特殊教育学校或专门学校（工读学校）").at("to_class_id")
                );
            }
            if !p.same_province {
                return Err(refuse("转入特教/工读限本省学校；跨省请办理转学").at("to_class_id"));
            }
            let target = p.grade.unwrap_or(g);
            if !p.target_school_grades.contains(&target) {
                return Err(Error::validation(
                    "to_class_id",
                    format!("转入学校不设{}", target.label_zh()),
                ));
            }
            Ok(Effect {
                status: S::Enrolled,
                grade: Some(target),
                ends_enrollment: false,
                moves_school: true,
            })
        }
        ChangeKind::KeyChange => Ok(effect(f.status, None, false)),
    }
}

/// What [`decide`] needs to know of a stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeState {
    pub status: ChangeStatus,
    /// User id of the administrator who filed: never a reviewer of their own request.
    pub filed_by: i64,
    /// 学校标识码 of the student's school (the filing school).
    pub school: String,
    /// Region code of that school's supervising authority.
    pub authority: String,
}

/// What a user asks of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    Review { approve: bool, opinion: String },
    Withdraw { reason: String },
}

/// A message for an organisation's notification list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeNotice {
    /// A step waits for the addressee.
    Waiting,
    Applied,
    Refused,
    Withdrawn,
    /// 控辍保学: a dropout was filed or approved; the authority organises 劝返.
    DropoutReport,
}

impl ChangeNotice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "change_waiting",
            Self::Applied => "change_applied",
            Self::Refused => "change_refused",
            Self::Withdrawn => "change_withdrawn",
            Self::DropoutReport => "dropout_report",
        }
    }
}

/// The outcome of an allowed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeTransition {
    pub to: ChangeStatus,
    /// The step this action decided (0 school, 1 authority).
    pub decided_step: Option<usize>,
    /// Apply the effect to the student in the same transaction.
    pub applies: bool,
    /// Release the business lock.
    pub unlocks: bool,
    pub notify: Vec<(OrgRef, ChangeNotice)>,
}

/// Opens a request: it waits for the school's reviewer.
pub fn new_request(school: &str) -> (ChangeStatus, Vec<(OrgRef, ChangeNotice)>) {
    (
        ChangeStatus::PendingSchool,
        vec![(OrgRef::School(school.into()), ChangeNotice::Waiting)],
    )
}

/// Decides whether `actor` may do `action` on a request in `state`, and what follows.
pub fn decide(
    state: &ChangeState,
    actor: &Actor,
    action: &ChangeAction,
) -> Result<ChangeTransition, Error> {
    let school = OrgRef::School(state.school.clone());
    let authority = OrgRef::Authority(state.authority.clone());
    if !state.status.is_pending() {
        return Err(Error::new(
            ErrorCode::Conflict,
            format!("该申请已结束（{}），不能再办理", state.status.label_zh()),
        ));
    }
    match action {
        ChangeAction::Withdraw { reason } => {
            if !(actor.org == school && actor.role == Role::SchoolAdmin) {
                return Err(Error::forbidden("只有提交申请的学校学籍管理员可以撤销"));
            }
            if reason.trim().is_empty() {
                return Err(
                    Error::new(ErrorCode::ReasonRequired, "撤销时须填写撤销原因").at("reason"),
                );
            }
            let mut notify = vec![];
            if state.status == ChangeStatus::PendingAuthority {
                notify.push((authority, ChangeNotice::Withdrawn));
            }
            Ok(ChangeTransition {
                to: ChangeStatus::Withdrawn,
                decided_step: None,
                unlocks: true,
                applies: false,
                notify,
            })
        }
        ChangeAction::Review { approve, opinion } => {
            if actor.role == Role::NationalAdmin {
                return Err(Error::forbidden(
                    "全国学籍管理员不审批学籍异动，请由学校和学籍主管部门办理",
                ));
            }
            let step = state.status.step().unwrap_or(0);
            let (party, wanted) = if step == 0 {
                (&school, Role::SchoolReviewer)
            } else {
                (&authority, Role::AuthorityAdmin)
            };
            if actor.org != *party {
                if step == 1 && actor.org == school {
                    return Err(Error::new(
                        ErrorCode::Conflict,
                        "本校已审核过该申请，申请已报学籍主管部门审批，请刷新后查看",
                    ));
                }
                if step == 0 && actor.org == authority {
                    return Err(Error::new(
                        ErrorCode::NotYourTurn,
                        "该申请待学校审核，尚未报送学籍主管部门",
                    ));
                }
                return Err(Error::forbidden("本单位不是该申请的审核单位，无权审核"));
            }
            if actor.user_id == state.filed_by {
                return Err(Error::forbidden("提交申请的人员不能审核本人提交的申请"));
            }
            if actor.role != wanted {
                return Err(Error::forbidden(if step == 0 {
                    "学校审核须由学籍主管领导（审核员）办理"
                } else {
                    "此步骤须由学籍主管部门的账号办理"
                }));
            }
            if !approve {
                if opinion.trim().is_empty() {
                    return Err(
                        Error::new(ErrorCode::ReasonRequired, "不同意时须填写审核意见")
                            .at("opinion"),
                    );
                }
                // The school learns of a refusal at either step (its reviewer's own refusal
                // still reaches its administrator through the school's message list).
                let notify = vec![(school.clone(), ChangeNotice::Refused)];
                return Ok(ChangeTransition {
                    to: ChangeStatus::Refused,
                    decided_step: Some(step),
                    applies: false,
                    unlocks: true,
                    notify,
                });
            }
            if step == 0 {
                Ok(ChangeTransition {
                    to: ChangeStatus::PendingAuthority,
                    decided_step: Some(0),
                    applies: false,
                    unlocks: false,
                    notify: vec![(authority, ChangeNotice::Waiting)],
                })
            } else {
                Ok(ChangeTransition {
                    to: ChangeStatus::Applied,
                    decided_step: Some(1),
                    applies: true,
                    unlocks: true,
                    notify: vec![(school, ChangeNotice::Applied)],
                })
            }
        }
    }
}

/// The report duty of a dropout (辍学), shown in the response and on the page.
pub const DROPOUT_DUTY_ZH: &str = "辍学报告义务：学校应立即联系学生家长劝返复学，并报告学籍主管部门和当地乡镇人民政府；学籍主管部门应会同有关部门落实控辍保学，劝返情况及时登记（《义务教育法》，国办发〔2017〕72号）。";

#[cfg(test)]
mod tests {
    use super::*;

    const SCHOOL: &str = "4101050003";
    const AUTH: &str = "410105";
    const FILER: i64 = 1;

    fn g(s: &str) -> Grade {
        Grade::parse(s).unwrap()
    }
    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }
    fn facts(status: StudentStatus, grade: &str, offered: &[&str]) -> StudentFacts {
        StudentFacts {
            status,
            grade: Some(g(grade)),
            school_grades: offered.iter().map(|x| g(x)).collect(),
        }
    }
    fn junior(status: StudentStatus, grade: &str) -> StudentFacts {
        facts(status, grade, &["21", "22", "23"])
    }
    fn senior(status: StudentStatus, grade: &str) -> StudentFacts {
        facts(status, grade, &["31", "32", "33"])
    }
    fn no_params() -> KindParams {
        KindParams::default()
    }

    #[test]
    fn kinds_and_statuses_round_trip() {
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
        }
        for s in ChangeStatus::ALL {
            assert_eq!(ChangeStatus::parse(s.as_str()), Some(s));
        }
        for s in StudentStatus::ALL {
            assert_eq!(StudentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ChangeKind::KeyChange.business(), "key_change");
        assert_eq!(ChangeKind::Dropout.business(), "status_change");
        assert!(ChangeKind::KeyChange.needs_evidence() && !ChangeKind::Death.needs_evidence());
    }

    #[test]
    fn suspension_needs_an_ordered_period_of_at_most_a_year() {
        let f = junior(StudentStatus::Enrolled, "22");
        let p = |from, until| KindParams {
            from,
            until,
            ..Default::default()
        };
        let e = check_kind(
            ChangeKind::Suspension,
            &f,
            &p(Some(d(11, 2)), Some(d(12, 31))),
        )
        .unwrap();
        assert_eq!(e.status, StudentStatus::Suspended);
        assert!(!e.ends_enrollment && e.grade.is_none());
        let missing = check_kind(ChangeKind::Suspension, &f, &p(None, Some(d(12, 1)))).unwrap_err();
        assert_eq!(missing.field, Some("from_date"));
        let reversed = check_kind(
            ChangeKind::Suspension,
            &f,
            &p(Some(d(12, 2)), Some(d(11, 2))),
        )
        .unwrap_err();
        assert_eq!(reversed.field, Some("until_date"));
        let long = p(Some(d(1, 1)), NaiveDate::from_ymd_opt(2027, 6, 1));
        assert!(check_kind(ChangeKind::Suspension, &f, &long).is_err());
        let suspended = junior(StudentStatus::Suspended, "22");
        let again = check_kind(
            ChangeKind::Suspension,
            &suspended,
            &p(Some(d(11, 2)), Some(d(12, 2))),
        )
        .unwrap_err();
        assert_eq!(again.code, ErrorCode::PolicyViolation);
    }

    #[test]
    fn resumption_only_from_suspension_into_a_neighbouring_grade() {
        let f = junior(StudentStatus::Suspended, "22");
        let e = check_kind(ChangeKind::Resumption, &f, &no_params()).unwrap();
        assert_eq!((e.status, e.grade), (StudentStatus::Enrolled, None));
        let back = KindParams {
            grade: Some(g("21")),
            ..Default::default()
        };
        assert_eq!(
            check_kind(ChangeKind::Resumption, &f, &back).unwrap().grade,
            Some(g("21"))
        );
        let far = KindParams {
            grade: Some(g("31")),
            ..Default::default()
        };
        assert_eq!(
            check_kind(ChangeKind::Resumption, &f, &far)
                .unwrap_err()
                .field,
            Some("to_grade")
        );
        let returned = junior(StudentStatus::DroppedOut, "22");
        assert!(check_kind(ChangeKind::Resumption, &returned, &no_params()).is_ok());
        let enrolled = junior(StudentStatus::Enrolled, "22");
        assert_eq!(
            check_kind(ChangeKind::Resumption, &enrolled, &no_params())
                .unwrap_err()
                .code,
            ErrorCode::PolicyViolation
        );
    }

    #[test]
    fn withdrawal_is_for_senior_high_only_and_dropout_for_compulsory_only() {
        let e = check_kind(
            ChangeKind::Withdrawal,
            &senior(StudentStatus::Enrolled, "32"),
            &no_params(),
        )
        .unwrap();
        assert_eq!(e.status, StudentStatus::Withdrawn);
        assert!(e.ends_enrollment);
        let junior_refused = check_kind(
            ChangeKind::Withdrawal,
            &junior(StudentStatus::Enrolled, "22"),
            &no_params(),
        )
        .unwrap_err();
        assert_eq!(junior_refused.code, ErrorCode::PolicyViolation);
        assert!(junior_refused.message.contains("仅适用于高中"));
        let primary = facts(StudentStatus::Enrolled, "13", &["13"]);
        let e = check_kind(ChangeKind::Dropout, &primary, &no_params()).unwrap();
        assert_eq!(e.status, StudentStatus::DroppedOut);
        assert!(
            check_kind(
                ChangeKind::Dropout,
                &senior(StudentStatus::Enrolled, "31"),
                &no_params()
            )
            .is_err()
        );
    }

    #[test]
    fn death_abroad_and_return() {
        let f = junior(StudentStatus::Abroad, "23");
        assert_eq!(
            check_kind(ChangeKind::Death, &f, &no_params())
                .unwrap()
                .status,
            StudentStatus::Deceased
        );
        let e = check_kind(ChangeKind::ReturnFromAbroad, &f, &no_params()).unwrap();
        assert_eq!(e.status, StudentStatus::Enrolled);
        assert!(
            check_kind(ChangeKind::Abroad, &f, &no_params()).is_err(),
            "already abroad"
        );
        let enrolled = junior(StudentStatus::Enrolled, "23");
        assert!(
            check_kind(ChangeKind::Abroad, &enrolled, &no_params())
                .unwrap()
                .ends_enrollment
        );
        assert!(check_kind(ChangeKind::ReturnFromAbroad, &enrolled, &no_params()).is_err());
        let dead = junior(StudentStatus::Deceased, "23");
        assert!(check_kind(ChangeKind::Death, &dead, &no_params()).is_err());
    }

    #[test]
    fn repeat_and_skip_stay_within_the_stage_and_the_school() {
        let f = junior(StudentStatus::Enrolled, "22");
        assert_eq!(
            check_kind(ChangeKind::RepeatGrade, &f, &no_params())
                .unwrap()
                .grade,
            Some(g("21"))
        );
        assert_eq!(
            check_kind(ChangeKind::SkipGrade, &f, &no_params())
                .unwrap()
                .grade,
            Some(g("23"))
        );
        // 初一 cannot repeat into 六年级, 初三 of a school without 初四 cannot skip.
        assert!(
            check_kind(
                ChangeKind::RepeatGrade,
                &junior(StudentStatus::Enrolled, "21"),
                &no_params()
            )
            .is_err()
        );
        let e = check_kind(
            ChangeKind::SkipGrade,
            &junior(StudentStatus::Enrolled, "23"),
            &no_params(),
        )
        .unwrap_err();
        assert!(e.message.contains("本校不设初四"), "{e}");
        assert!(
            check_kind(
                ChangeKind::SkipGrade,
                &senior(StudentStatus::Enrolled, "33"),
                &no_params()
            )
            .is_err()
        );
        assert_eq!(neighbour(g("16"), 1), None);
        assert_eq!(neighbour(g("11"), -1), None);
    }

    #[test]
    fn special_education_needs_a_special_school_in_the_province() {
        let f = junior(StudentStatus::Enrolled, "22");
        let p = |t: &str, same| KindParams {
            target_school_type: Some(t.into()),
            target_school_grades: vec![g("21"), g("22"), g("23")],
            same_province: same,
            ..Default::default()
        };
        let e = check_kind(ChangeKind::SpecialEducation, &f, &p("专门学校", true)).unwrap();
        assert!(e.moves_school && e.status == StudentStatus::Enrolled);
        assert_eq!(e.grade, Some(g("22")));
        assert!(check_kind(ChangeKind::SpecialEducation, &f, &p("特殊教育学校", true)).is_ok());
        assert!(check_kind(ChangeKind::SpecialEducation, &f, &p("初级中学", true)).is_err());
        assert!(check_kind(ChangeKind::SpecialEducation, &f, &p("专门学校", false)).is_err());
        assert!(
            check_kind(
                ChangeKind::SpecialEducation,
                &senior(StudentStatus::Enrolled, "31"),
                &p("专门学校", true)
            )
            .is_err()
        );
        assert!(check_kind(ChangeKind::SpecialEducation, &f, &no_params()).is_err());
    }

    fn state(status: ChangeStatus) -> ChangeState {
        ChangeState {
            status,
            filed_by: FILER,
            school: SCHOOL.into(),
            authority: AUTH.into(),
        }
    }
    fn actor(user_id: i64, role: Role, org: OrgRef) -> Actor {
        Actor { user_id, role, org }
    }
    fn school_admin(id: i64) -> Actor {
        actor(id, Role::SchoolAdmin, OrgRef::School(SCHOOL.into()))
    }
    fn reviewer() -> Actor {
        actor(3, Role::SchoolReviewer, OrgRef::School(SCHOOL.into()))
    }
    fn authority() -> Actor {
        actor(4, Role::AuthorityAdmin, OrgRef::Authority(AUTH.into()))
    }
    fn approve() -> ChangeAction {
        ChangeAction::Review {
            approve: true,
            opinion: String::new(),
        }
    }
    fn reject(o: &str) -> ChangeAction {
        ChangeAction::Review {
            approve: false,
            opinion: o.into(),
        }
    }

    #[test]
    fn school_reviewer_then_authority_then_applied() {
        let (status, notify) = new_request(SCHOOL);
        assert_eq!(status, ChangeStatus::PendingSchool);
        assert_eq!(notify[0].0, OrgRef::School(SCHOOL.into()));
        let t = decide(&state(status), &reviewer(), &approve()).unwrap();
        assert_eq!(
            (t.to, t.decided_step, t.applies),
            (ChangeStatus::PendingAuthority, Some(0), false)
        );
        assert_eq!(
            t.notify,
            vec![(OrgRef::Authority(AUTH.into()), ChangeNotice::Waiting)]
        );
        let t = decide(&state(t.to), &authority(), &approve()).unwrap();
        assert_eq!(t.to, ChangeStatus::Applied);
        assert!(t.applies && t.unlocks);
        assert_eq!(
            decide(&state(t.to), &authority(), &approve())
                .unwrap_err()
                .code,
            ErrorCode::Conflict
        );
    }

    #[test]
    fn wrong_people_are_refused_with_the_right_code() {
        let s = state(ChangeStatus::PendingSchool);
        let code = |a: &Actor| decide(&s, a, &approve()).unwrap_err().code;
        assert_eq!(code(&school_admin(FILER)), ErrorCode::Forbidden);
        assert_eq!(code(&school_admin(2)), ErrorCode::Forbidden);
        assert_eq!(code(&authority()), ErrorCode::NotYourTurn);
        assert_eq!(
            code(&actor(
                5,
                Role::SchoolReviewer,
                OrgRef::School("4101050001".into())
            )),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(&actor(
                6,
                Role::AuthorityAdmin,
                OrgRef::Authority("440106".into())
            )),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(&actor(7, Role::NationalAdmin, OrgRef::National)),
            ErrorCode::Forbidden
        );
        let later = state(ChangeStatus::PendingAuthority);
        assert_eq!(
            decide(&later, &reviewer(), &approve()).unwrap_err().code,
            ErrorCode::Conflict
        );
    }

    #[test]
    fn refusal_needs_an_opinion_and_unlocks() {
        let s = state(ChangeStatus::PendingAuthority);
        assert_eq!(
            decide(&s, &authority(), &reject("  ")).unwrap_err().code,
            ErrorCode::ReasonRequired
        );
        let t = decide(&s, &authority(), &reject("材料不全")).unwrap();
        assert_eq!(t.to, ChangeStatus::Refused);
        assert!(t.unlocks && !t.applies);
    }

    proptest::proptest! {
        /// Whatever anyone clicks, in any order: the change applies at most once, only on the
        /// authority's approval after the school's, and the lock is released exactly when the
        /// request ends.
        #[test]
        fn applies_once_and_only_after_both_approvals(
            steps in proptest::collection::vec((0usize..6, 0usize..4), 0..20)
        ) {
            let people = [
                school_admin(FILER),
                school_admin(2),
                reviewer(),
                authority(),
                actor(8, Role::AuthorityAdmin, OrgRef::Authority("440106".into())),
                actor(9, Role::NationalAdmin, OrgRef::National),
            ];
            let actions = [approve(), reject("不符合条件"), reject(""), ChangeAction::Withdraw { reason: "撤回".into() }];
            let mut st = state(ChangeStatus::PendingSchool);
            let (mut applied, mut unlocked, mut school_ok) = (0, 0, false);
            for (who, what) in steps {
                let before = st.status;
                match decide(&st, &people[who], &actions[what]) {
                    Ok(t) => {
                        proptest::prop_assert!(before.is_pending());
                        if t.applies {
                            proptest::prop_assert!(school_ok && before == ChangeStatus::PendingAuthority);
                            proptest::prop_assert_eq!(&people[who].org, &OrgRef::Authority(AUTH.into()));
                            applied += 1;
                        }
                        if t.to == ChangeStatus::PendingAuthority {
                            school_ok = true;
                        }
                        proptest::prop_assert_eq!(t.unlocks, !t.to.is_pending());
                        unlocked += usize::from(t.unlocks);
                        st.status = t.to;
                    }
                    Err(_) => proptest::prop_assert_eq!(st.status, before),
                }
            }
            proptest::prop_assert!(applied <= 1);
            proptest::prop_assert_eq!(unlocked, usize::from(!st.status.is_pending()));
            proptest::prop_assert_eq!(applied == 1, st.status == ChangeStatus::Applied);
        }
    }

    #[test]
    fn the_school_admin_withdraws_while_pending() {
        let w = |r: &str| ChangeAction::Withdraw { reason: r.into() };
        let s = state(ChangeStatus::PendingAuthority);
        assert_eq!(
            decide(&s, &reviewer(), &w("x")).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            decide(&s, &authority(), &w("x")).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            decide(&s, &school_admin(FILER), &w("")).unwrap_err().code,
            ErrorCode::ReasonRequired
        );
        let t = decide(&s, &school_admin(FILER), &w("家长改变主意")).unwrap();
        assert_eq!(t.to, ChangeStatus::Withdrawn);
        assert!(t.unlocks);
        assert_eq!(
            decide(&state(ChangeStatus::Applied), &school_admin(FILER), &w("x"))
                .unwrap_err()
                .code,
            ErrorCode::Conflict
        );
    }
}
