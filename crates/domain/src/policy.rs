//! Provincial transfer policy (《中小学生学籍管理办法》 Art. 11: each province sets the
//! conditions of status changes). Pure evaluation: the application layer stores versions and
//! passes the policies in force.
//!
//! When the two provinces' rules differ, each applies to its own side: the sending province's
//! rules to the outgoing direction and its authorities' steps, the receiving province's to the
//! incoming direction and its steps.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::access::OrgRef;
use crate::error::{Error, ErrorCode};
use crate::ids::Grade;
use crate::transfer::{Side, StepRole, StepSpec, TransferKind};

/// Which transfers a rule covers, seen from the province that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Students coming into the province's schools.
    In,
    /// Students leaving the province's schools.
    Out,
    #[default]
    Both,
}

impl Direction {
    fn covers(self, side: Side) -> bool {
        matches!(
            (self, side),
            (Direction::Both, _) | (Direction::In, Side::In) | (Direction::Out, Side::Out)
        )
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Direction::In => "转入",
            Direction::Out => "转出",
            Direction::Both => "转入和转出",
        }
    }
}

/// A school term: 第一学期 (September–January) or 第二学期 (February–August).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    First,
    Second,
    Any,
}

impl Term {
    pub fn of(date: NaiveDate) -> Term {
        if date.month() >= 9 || date.month() == 1 {
            Term::First
        } else {
            Term::Second
        }
    }

    fn covers(self, date: NaiveDate) -> bool {
        self == Term::Any || self == Term::of(date)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Term::First => "第一学期",
            Term::Second => "第二学期",
            Term::Any => "全学年",
        }
    }
}

/// A period closed to new applications, repeating every year (e.g. a summer freeze 07-21..08-14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// First closed day, `MM-DD`.
    pub start: String,
    /// Last closed day, `MM-DD` (may be before `start`: the period spans the new year).
    pub end: String,
    #[serde(default)]
    pub direction: Direction,
    /// Kinds covered; empty = both kinds.
    #[serde(default)]
    pub kinds: Vec<TransferKind>,
    /// How users see the rule, e.g. 暑期停办.
    #[serde(default)]
    pub name: String,
}

/// A grade closed to transfers in a term (e.g. no transfer in the second term of 初三).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosedGrade {
    /// Grade code; the sending side checks the current grade, the receiving side the target grade.
    pub grade: String,
    pub term: Term,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub name: String,
}

/// An authority level above the county that also reviews this province's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    City,
    Province,
}

/// What happens when a step passes its due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverdueAction {
    /// Shown as overdue on work lists and dashboards.
    #[default]
    Flag,
    /// The authority above may then act on the step.
    Escalate,
    /// The step counts as approved (逾期视为同意).
    AutoApprove,
}

impl OverdueAction {
    pub fn label_zh(self) -> &'static str {
        match self {
            OverdueAction::Flag => "逾期标记",
            OverdueAction::Escalate => "逾期由上级部门督办",
            OverdueAction::AutoApprove => "逾期视为同意",
        }
    }
}

/// Evidence a reason requires (e.g. 随迁: 居住证明).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRule {
    /// The rule applies when the reason contains this text (e.g. 随迁, 户籍迁移).
    pub reason_contains: String,
    /// Files required at least.
    pub min_files: u32,
    /// What to upload, e.g. 父母居住证或房产证明.
    pub label: String,
}

/// One province's transfer policy. The default is the national one: open every day, every grade,
/// the seed's four steps, 10 working days, overdue steps flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub freezes: Vec<Freeze>,
    pub closed_grades: Vec<ClosedGrade>,
    /// Refuse students in 休学 (always true nationally; kept explicit for the rule's name).
    pub refuse_suspended: bool,
    /// Refuse students under a sanction in force (处分期内不得转出).
    pub refuse_sanctioned: bool,
    /// Authority levels above the county reviewing this province's side, in order.
    pub extra_levels: Vec<Level>,
    /// A leader's confirmation after each authority operator step on this side.
    pub leader_confirm: bool,
    /// One authority serving both schools approves once.
    pub shared_authority_once: bool,
    /// Working days per step.
    pub deadline_days: u32,
    pub overdue_action: OverdueAction,
    pub required_evidence: Vec<EvidenceRule>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            freezes: vec![],
            closed_grades: vec![],
            refuse_suspended: true,
            refuse_sanctioned: false,
            extra_levels: vec![],
            leader_confirm: false,
            shared_authority_once: true,
            deadline_days: 10,
            overdue_action: OverdueAction::Flag,
            required_evidence: vec![],
        }
    }
}

fn month_day(s: &str, field: &'static str) -> Result<(u32, u32), Error> {
    let bad = || Error::validation(field, "日期应为 MM-DD，如 07-21");
    let (m, d) = s.trim().split_once('-').ok_or_else(bad)?;
    let (m, d): (u32, u32) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    // 2000 is a leap year, so 02-29 is accepted.
    NaiveDate::from_ymd_opt(2000, m, d).ok_or_else(bad)?;
    Ok((m, d))
}

impl Freeze {
    fn covers_date(&self, date: NaiveDate) -> bool {
        let (Ok(s), Ok(e)) = (month_day(&self.start, "start"), month_day(&self.end, "end")) else {
            return false;
        };
        let md = (date.month(), date.day());
        if s <= e {
            s <= md && md <= e
        } else {
            md >= s || md <= e
        }
    }
}

/// Facts about an application that the rules look at.
#[derive(Debug, Clone)]
pub struct FilingFacts<'a> {
    pub date: NaiveDate,
    pub kind: TransferKind,
    /// The student's current grade (the sending side's rules look at it).
    pub from_grade: Grade,
    /// The target grade (the receiving side's rules look at it).
    pub to_grade: Grade,
    pub suspended: bool,
    /// A 处分 is in force on the filing date.
    pub sanctioned: bool,
    pub reason: &'a str,
    pub evidence_files: u32,
}

fn violation(province_name: &str, rule: String) -> Error {
    Error::new(
        ErrorCode::PolicyViolation,
        format!("不符合{province_name}转学政策：{rule}"),
    )
    .at("policy")
}

impl Policy {
    /// Checks a policy's own consistency before it is saved.
    pub fn validate(&self) -> Result<(), Error> {
        for f in &self.freezes {
            month_day(&f.start, "freezes.start")?;
            month_day(&f.end, "freezes.end")?;
        }
        for g in &self.closed_grades {
            Grade::parse(&g.grade).map_err(|e| e.at("closed_grades.grade"))?;
        }
        if !(1..=60).contains(&self.deadline_days) {
            return Err(Error::validation(
                "deadline_days",
                "办理时限应为1至60个工作日",
            ));
        }
        let mut levels = self.extra_levels.clone();
        levels.dedup();
        if levels.len() != self.extra_levels.len() {
            return Err(Error::validation("extra_levels", "审核层级不能重复"));
        }
        for r in &self.required_evidence {
            if r.reason_contains.trim().is_empty() || r.label.trim().is_empty() {
                return Err(Error::validation(
                    "required_evidence",
                    "请填写适用的转学理由关键词和所需材料",
                ));
            }
        }
        Ok(())
    }

    /// Applies this province's rules to its own side of an application. `province_name` names the
    /// rule's owner in the refusal (e.g. 河南省).
    pub fn check_filing(
        &self,
        side: Side,
        province_name: &str,
        f: &FilingFacts<'_>,
    ) -> Result<(), Error> {
        for fr in &self.freezes {
            if fr.direction.covers(side)
                && (fr.kinds.is_empty() || fr.kinds.contains(&f.kind))
                && fr.covers_date(f.date)
            {
                let name = if fr.name.is_empty() {
                    "停办期"
                } else {
                    fr.name.as_str()
                };
                return Err(violation(
                    province_name,
                    format!(
                        "{}至{}为{}，不受理{}申请",
                        fr.start,
                        fr.end,
                        name,
                        fr.direction.label_zh()
                    ),
                ));
            }
        }
        let grade = match side {
            Side::Out => f.from_grade,
            Side::In => f.to_grade,
        };
        for g in &self.closed_grades {
            if g.direction.covers(side) && g.grade == grade.code() && g.term.covers(f.date) {
                let name = if g.name.is_empty() {
                    String::new()
                } else {
                    format!("（{}）", g.name)
                };
                return Err(violation(
                    province_name,
                    format!(
                        "{}{}不办理{}{name}",
                        grade.label_zh(),
                        g.term.label_zh(),
                        side_label(side)
                    ),
                ));
            }
        }
        if self.refuse_suspended && f.suspended && side == Side::Out {
            return Err(violation(
                province_name,
                "休学期间不办理转学，须先复学".into(),
            ));
        }
        if self.refuse_sanctioned && f.sanctioned && side == Side::Out {
            return Err(violation(
                province_name,
                "学生处分期内不办理转出，须待处分期满或解除处分".into(),
            ));
        }
        if side == Side::In {
            for r in &self.required_evidence {
                if f.reason.contains(r.reason_contains.as_str()) && f.evidence_files < r.min_files {
                    return Err(violation(
                        province_name,
                        format!(
                            "以“{}”为理由的转学须上传{}（至少{}个文件）",
                            r.reason_contains, r.label, r.min_files
                        ),
                    )
                    .at("evidence"));
                }
            }
        }
        Ok(())
    }
}

fn side_label(side: Side) -> &'static str {
    match side {
        Side::In => "转入",
        Side::Out => "转出",
    }
}

/// The authorities above a school's supervising authority, for extra levels: (city, province)
/// region codes, `None` where the level does not exist or is the supervising authority itself.
#[derive(Debug, Clone)]
pub struct AuthorityLine {
    pub school: String,
    pub authority: String,
    pub city: Option<String>,
    pub province: String,
}

fn side_steps(
    side: Side,
    line: &AuthorityLine,
    policy: &Policy,
    include_school: bool,
    out: &mut Vec<StepSpec>,
) {
    if include_school {
        out.push(StepSpec::school(side, &line.school));
    }
    let mut authorities = vec![line.authority.clone()];
    for level in &policy.extra_levels {
        let code = match level {
            Level::City => line.city.clone(),
            Level::Province => Some(line.province.clone()),
        };
        if let Some(c) = code
            && !authorities.contains(&c)
        {
            authorities.push(c);
        }
    }
    for a in authorities {
        out.push(StepSpec::authority(side, &a));
        if policy.leader_confirm {
            out.push(StepSpec {
                role: StepRole::LeaderConfirm,
                ..StepSpec::authority(side, &a)
            });
        }
    }
}

/// The approval chain under both provinces' policies. With default policies this is
/// [`crate::transfer::default_chain`]: receiving school, receiving authority, sending school,
/// sending authority — or, when one authority serves both schools and both policies allow it,
/// both schools then that authority once.
pub fn chain(
    to: &AuthorityLine,
    to_policy: &Policy,
    from: &AuthorityLine,
    from_policy: &Policy,
) -> Vec<StepSpec> {
    let mut out = vec![];
    if to.authority == from.authority
        && to_policy.shared_authority_once
        && from_policy.shared_authority_once
    {
        out.push(StepSpec::school(Side::In, &to.school));
        out.push(StepSpec::school(Side::Out, &from.school));
        let mut shared = vec![];
        side_steps(Side::Out, from, from_policy, false, &mut shared);
        out.extend(shared.into_iter().map(|s| StepSpec { shared: true, ..s }));
        return out;
    }
    side_steps(Side::In, to, to_policy, true, &mut out);
    side_steps(Side::Out, from, from_policy, true, &mut out);
    out
}

/// The authority that may act on an escalated overdue step: the one above the step's party.
pub fn escalation_target(step: &StepSpec, line: &AuthorityLine) -> Option<OrgRef> {
    match &step.party {
        OrgRef::School(_) => Some(OrgRef::Authority(line.authority.clone())),
        OrgRef::Authority(code) if *code == line.authority => line
            .city
            .clone()
            .filter(|c| c != code)
            .or(Some(line.province.clone()))
            .filter(|c| c != code)
            .map(OrgRef::Authority),
        OrgRef::Authority(code) if line.city.as_deref() == Some(code.as_str()) => {
            Some(OrgRef::Authority(line.province.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::{Parties, default_chain};

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    fn facts(date: NaiveDate) -> FilingFacts<'static> {
        FilingFacts {
            date,
            kind: TransferKind::CrossProvince,
            from_grade: Grade::parse("23").unwrap(),
            to_grade: Grade::parse("23").unwrap(),
            suspended: false,
            sanctioned: false,
            reason: "随父母务工",
            evidence_files: 0,
        }
    }

    fn line(school: &str, county: &str) -> AuthorityLine {
        AuthorityLine {
            school: school.into(),
            authority: county.into(),
            city: Some(format!("{}00", &county[0..4])),
            province: format!("{}0000", &county[0..2]),
        }
    }

    #[test]
    fn default_policy_accepts_everything_and_gives_the_seed_chain() {
        let p = Policy::default();
        for m in 1..=12 {
            assert!(p.check_filing(Side::In, "河南省", &facts(d(m, 15))).is_ok());
            assert!(
                p.check_filing(Side::Out, "河南省", &facts(d(m, 15)))
                    .is_ok()
            );
        }
        let to = line("4401060001", "440106");
        let from = line("4101050001", "410105");
        let parties = Parties {
            from_school: from.school.clone(),
            from_authority: from.authority.clone(),
            to_school: to.school.clone(),
            to_authority: to.authority.clone(),
        };
        assert_eq!(chain(&to, &p, &from, &p), default_chain(&parties));
        let same = line("4101050002", "410105");
        let parties = Parties {
            to_school: same.school.clone(),
            to_authority: same.authority.clone(),
            ..parties
        };
        assert_eq!(chain(&same, &p, &from, &p), default_chain(&parties));
    }

    #[test]
    fn summer_freeze_names_the_rule_and_respects_direction_and_wraparound() {
        let p = Policy {
            freezes: vec![Freeze {
                start: "07-21".into(),
                end: "08-14".into(),
                direction: Direction::In,
                kinds: vec![],
                name: "暑期停办".into(),
            }],
            ..Policy::default()
        };
        let e = p
            .check_filing(Side::In, "广东省", &facts(d(7, 21)))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PolicyViolation);
        assert!(
            e.message.contains("广东省")
                && e.message.contains("暑期停办")
                && e.message.contains("07-21"),
            "{}",
            e.message
        );
        assert!(
            p.check_filing(Side::In, "广东省", &facts(d(8, 14)))
                .is_err()
        );
        assert!(p.check_filing(Side::In, "广东省", &facts(d(8, 15))).is_ok());
        assert!(
            p.check_filing(Side::Out, "广东省", &facts(d(7, 30)))
                .is_ok(),
            "only the incoming direction is frozen"
        );
        let winter = Policy {
            freezes: vec![Freeze {
                start: "12-25".into(),
                end: "01-05".into(),
                direction: Direction::Both,
                kinds: vec![TransferKind::IntraProvince],
                name: String::new(),
            }],
            ..Policy::default()
        };
        let mut f = facts(d(1, 3));
        assert!(
            winter.check_filing(Side::Out, "x", &f).is_ok(),
            "cross-province not covered"
        );
        f.kind = TransferKind::IntraProvince;
        assert!(winter.check_filing(Side::Out, "x", &f).is_err());
    }

    #[test]
    fn closed_grades_by_term_and_side() {
        let p = Policy {
            closed_grades: vec![ClosedGrade {
                grade: "23".into(),
                term: Term::Second,
                direction: Direction::Both,
                name: "毕业年级".into(),
            }],
            ..Policy::default()
        };
        let e = p
            .check_filing(Side::Out, "河南省", &facts(d(3, 2)))
            .unwrap_err();
        assert!(
            e.message.contains("初三第二学期不办理转出"),
            "{}",
            e.message
        );
        assert!(
            p.check_filing(Side::Out, "河南省", &facts(d(10, 8)))
                .is_ok(),
            "first term open"
        );
        let mut f = facts(d(3, 2));
        f.from_grade = Grade::parse("22").unwrap();
        assert!(
            p.check_filing(Side::Out, "河南省", &f).is_ok(),
            "the sending side looks at the current grade"
        );
        assert!(
            p.check_filing(Side::In, "河南省", &f).is_err(),
            "the receiving side looks at the target grade"
        );
    }

    #[test]
    fn suspended_students_and_evidence() {
        let p = Policy {
            required_evidence: vec![EvidenceRule {
                reason_contains: "随迁".into(),
                min_files: 1,
                label: "居住证明".into(),
            }],
            ..Policy::default()
        };
        let mut f = facts(d(10, 8));
        f.suspended = true;
        assert!(p.check_filing(Side::Out, "x", &f).is_err());
        f.suspended = false;
        f.reason = "随迁子女入学";
        let e = p.check_filing(Side::In, "x", &f).unwrap_err();
        assert!(e.message.contains("居住证明"));
        f.evidence_files = 1;
        assert!(p.check_filing(Side::In, "x", &f).is_ok());
    }

    #[test]
    fn sanctioned_students_are_refused_only_where_the_sending_province_says_so() {
        let mut f = facts(d(10, 8));
        f.sanctioned = true;
        assert!(
            Policy::default().check_filing(Side::Out, "x", &f).is_ok(),
            "the national default does not refuse sanctioned students"
        );
        let p = Policy {
            refuse_sanctioned: true,
            ..Policy::default()
        };
        let e = p.check_filing(Side::Out, "河南省", &f).unwrap_err();
        assert_eq!(e.code, ErrorCode::PolicyViolation);
        assert!(e.message.contains("河南省") && e.message.contains("处分"));
        assert!(
            p.check_filing(Side::In, "河南省", &f).is_ok(),
            "the receiving province's rule does not look at the sending side"
        );
        f.sanctioned = false;
        assert!(p.check_filing(Side::Out, "河南省", &f).is_ok());
    }

    #[test]
    fn extra_levels_and_leader_confirmation_apply_to_their_own_side() {
        let to = line("4401060001", "440106");
        let from = line("4101050001", "410105");
        let to_p = Policy {
            extra_levels: vec![Level::City, Level::Province],
            ..Policy::default()
        };
        let from_p = Policy {
            leader_confirm: true,
            ..Policy::default()
        };
        let c = chain(&to, &to_p, &from, &from_p);
        let codes: Vec<(&str, String)> = c
            .iter()
            .map(|s| {
                (
                    s.code(),
                    match &s.party {
                        OrgRef::School(x) | OrgRef::Authority(x) => x.clone(),
                        OrgRef::National => String::new(),
                    },
                )
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                ("in_school", "4401060001".into()),
                ("in_authority", "440106".into()),
                ("in_authority", "440100".into()),
                ("in_authority", "440000".into()),
                ("out_school", "4101050001".into()),
                ("out_authority", "410105".into()),
                ("out_authority_leader", "410105".into()),
            ]
        );
        // One authority for both: still once, with the leader after it when the policy asks.
        let same = line("4101050002", "410105");
        let c = chain(&same, &from_p, &from, &from_p);
        assert_eq!(
            c.iter().map(|s| s.code()).collect::<Vec<_>>(),
            [
                "in_school",
                "out_school",
                "shared_authority",
                "shared_authority_leader"
            ]
        );
        let no_share = Policy {
            shared_authority_once: false,
            ..Policy::default()
        };
        assert_eq!(chain(&same, &no_share, &from, &Policy::default()).len(), 4);
    }

    #[test]
    fn escalation_goes_one_level_up() {
        let l = line("4101050001", "410105");
        assert_eq!(
            escalation_target(&StepSpec::school(Side::Out, "4101050001"), &l),
            Some(OrgRef::Authority("410105".into()))
        );
        assert_eq!(
            escalation_target(&StepSpec::authority(Side::Out, "410105"), &l),
            Some(OrgRef::Authority("410100".into()))
        );
        assert_eq!(
            escalation_target(&StepSpec::authority(Side::Out, "410100"), &l),
            Some(OrgRef::Authority("410000".into()))
        );
        assert_eq!(
            escalation_target(&StepSpec::authority(Side::Out, "410000"), &l),
            None
        );
    }

    #[test]
    fn validation_refuses_bad_policies() {
        let bad = Policy {
            freezes: vec![Freeze {
                start: "13-01".into(),
                end: "01-01".into(),
                direction: Direction::Both,
                kinds: vec![],
                name: String::new(),
            }],
            ..Policy::default()
        };
        assert!(bad.validate().is_err());
        assert!(
            Policy {
                deadline_days: 0,
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Policy {
                extra_levels: vec![Level::City, Level::City],
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
        assert!(Policy::default().validate().is_ok());
    }
}
