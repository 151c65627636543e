//! 系统管理 → 转学政策: `GET /policy?province=…` shows a province's policy in force and its
//! versions; the province's own authority (or the national administrator) saves a new version
//! with `POST /policy`.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use xueji_app::policies::PolicyOut;
use xueji_domain::Error;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{Grade, RegionCode, RegionLevel};
use xueji_domain::policy::{
    ClosedGrade, Direction, EvidenceRule, Freeze, Level, OverdueAction, Policy, Term,
};
use xueji_domain::transfer::TransferKind;

use super::{Opt, Pairs, check_csrf};
use crate::AppState;
use crate::pages::{Layout, PageResult, fmt_time, last_value, status_of, user_error};
use crate::session::WebUser;

/// Rows offered at least, blank ones included.
const FREEZE_ROWS: usize = 5;
const GRADE_ROWS: usize = 6;
const EVIDENCE_ROWS: usize = 5;
/// Rows read from a form at most (the API may have saved more than the form offers).
const MAX_ROWS: usize = 30;

// ---------------------------------------------------------------------------------------------
// The policy in words.

fn direction_word(d: Direction) -> &'static str {
    match d {
        Direction::In => "转入",
        Direction::Out => "转出",
        Direction::Both => "转入和转出",
    }
}

fn kinds_word(kinds: &[TransferKind]) -> &'static str {
    match kinds {
        [TransferKind::CrossProvince] => "跨省转学",
        [TransferKind::IntraProvince] => "省内转学",
        _ => "跨省和省内转学",
    }
}

fn overdue_word(a: OverdueAction) -> &'static str {
    match a {
        OverdueAction::Flag => "仅标记逾期",
        OverdueAction::Escalate => "上级督办（逾期后由上一级学籍主管部门督办，可代为审核）",
        OverdueAction::AutoApprove => "逾期视为同意",
    }
}

fn grade_word(code: &str) -> String {
    Grade::parse(code)
        .map(|g| g.label_zh().to_string())
        .unwrap_or_else(|_| code.to_string())
}

/// One rule as users read it.
pub struct Rule {
    pub label: &'static str,
    pub lines: Vec<String>,
}

fn rules_of(p: &Policy) -> Vec<Rule> {
    let none = || vec!["无".to_string()];
    let freezes: Vec<String> = p
        .freezes
        .iter()
        .map(|f| {
            let name = if f.name.is_empty() {
                "停办期"
            } else {
                f.name.as_str()
            };
            format!(
                "{}至{}　{}：不受理{}的{}申请",
                f.start,
                f.end,
                name,
                direction_word(f.direction),
                kinds_word(&f.kinds)
            )
        })
        .collect();
    let grades: Vec<String> = p
        .closed_grades
        .iter()
        .map(|g| {
            let name = if g.name.is_empty() {
                String::new()
            } else {
                format!("（{}）", g.name)
            };
            format!(
                "{}{}不办理{}{name}",
                grade_word(&g.grade),
                g.term.label_zh(),
                direction_word(g.direction)
            )
        })
        .collect();
    let mut chain = vec!["区县级学籍主管部门".to_string()];
    chain.extend(p.extra_levels.iter().map(|l| {
        match l {
            Level::City => "地市级学籍主管部门",
            Level::Province => "省级学籍主管部门",
        }
        .to_string()
    }));
    let evidence: Vec<String> = p
        .required_evidence
        .iter()
        .map(|r| {
            format!(
                "转学理由含“{}”：须上传{}（至少{}个文件）",
                r.reason_contains, r.label, r.min_files
            )
        })
        .collect();
    let yes_no = |b: bool, yes: &str, no: &str| vec![if b { yes } else { no }.to_string()];
    vec![
        Rule {
            label: "停办期",
            lines: if freezes.is_empty() { none() } else { freezes },
        },
        Rule {
            label: "不办理年级",
            lines: if grades.is_empty() { none() } else { grades },
        },
        Rule {
            label: "休学学生",
            lines: yes_no(p.refuse_suspended, "休学期间不得转出，须先复学", "不限制"),
        },
        Rule {
            label: "受处分学生",
            lines: yes_no(
                p.refuse_sanctioned,
                "处分期内不得转出，须待期满或解除处分",
                "不限制",
            ),
        },
        Rule {
            label: "本省审核层级",
            lines: vec![format!(
                "学校审核 → {}",
                chain
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(" → ")
            )],
        },
        Rule {
            label: "领导确认",
            lines: yes_no(
                p.leader_confirm,
                "学籍主管部门经办人审核后须由领导确认",
                "不需要",
            ),
        },
        Rule {
            label: "同一主管部门",
            lines: yes_no(
                p.shared_authority_once,
                "转出、转入学校属同一学籍主管部门时只审核一次",
                "转出、转入两侧分别审核",
            ),
        },
        Rule {
            label: "办理时限",
            lines: vec![format!("每个审核环节{}个工作日", p.deadline_days)],
        },
        Rule {
            label: "逾期处理",
            lines: vec![overdue_word(p.overdue_action).to_string()],
        },
        Rule {
            label: "所需材料",
            lines: if evidence.is_empty() {
                none()
            } else {
                evidence
            },
        },
    ]
}

/// One saved version as listed in the history.
pub struct VersionRow {
    pub version: i64,
    pub at: String,
    pub by: String,
    pub note: String,
    pub summary: String,
}

fn summary_of(p: &Policy) -> String {
    let mut parts = vec![];
    if !p.freezes.is_empty() {
        parts.push(format!("停办期{}项", p.freezes.len()));
    }
    if !p.closed_grades.is_empty() {
        parts.push(format!("不办理年级{}项", p.closed_grades.len()));
    }
    if !p.extra_levels.is_empty() {
        parts.push(format!("增加审核层级{}级", p.extra_levels.len()));
    }
    if p.leader_confirm {
        parts.push("领导确认".into());
    }
    parts.push(format!("时限{}个工作日", p.deadline_days));
    parts.push(
        match p.overdue_action {
            OverdueAction::Flag => "仅标记逾期",
            OverdueAction::Escalate => "逾期上级督办",
            OverdueAction::AutoApprove => "逾期视为同意",
        }
        .into(),
    );
    if !p.required_evidence.is_empty() {
        parts.push(format!("所需材料{}项", p.required_evidence.len()));
    }
    parts.join("；")
}

// ---------------------------------------------------------------------------------------------
// The edit form as typed.

#[derive(Default, Clone)]
pub struct FreezeRow {
    pub start: String,
    pub end: String,
    pub direction: String,
    pub kind: String,
    pub name: String,
}

#[derive(Default, Clone)]
pub struct GradeRow {
    pub grade: String,
    pub term: String,
    pub direction: String,
    pub name: String,
}

#[derive(Default, Clone)]
pub struct EvidenceRow {
    pub reason: String,
    pub min_files: String,
    pub label: String,
}

#[derive(Default)]
pub struct PolicyForm {
    pub freezes: Vec<FreezeRow>,
    pub grades: Vec<GradeRow>,
    pub refuse_suspended: bool,
    pub refuse_sanctioned: bool,
    pub leader_confirm: bool,
    pub shared_once: bool,
    pub level_city: bool,
    pub level_province: bool,
    pub deadline_days: String,
    pub overdue_action: String,
    pub evidence: Vec<EvidenceRow>,
    pub note: String,
    pub error: String,
    /// `freezes.2`, `grades.0`, `evidence.1`, `deadline_days`, `extra_levels`, `note`, or a
    /// section name (`freezes`, `grades`, `evidence`) when the row is not known.
    pub error_field: String,
}

impl PolicyForm {
    /// The message when it belongs beside `field`.
    pub fn err(&self, field: &str) -> &str {
        if self.error_field == field {
            &self.error
        } else {
            ""
        }
    }

    pub fn row_err(&self, section: &str, i: &usize) -> &str {
        if self.error_field == format!("{section}.{i}") {
            &self.error
        } else {
            ""
        }
    }

    /// The message when it belongs to no field shown (shown above the form).
    pub fn general_error(&self) -> &str {
        const SHOWN: [&str; 7] = [
            "freezes",
            "grades",
            "evidence",
            "deadline_days",
            "extra_levels",
            "note",
            "overdue_action",
        ];
        let f = self.error_field.split('.').next().unwrap_or("");
        if SHOWN.contains(&f) { "" } else { &self.error }
    }

    fn of(p: &Policy) -> Self {
        let dir = |d: Direction| match d {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Both => "both",
        };
        let mut f = PolicyForm {
            freezes: p
                .freezes
                .iter()
                .map(|x| FreezeRow {
                    start: x.start.clone(),
                    end: x.end.clone(),
                    direction: dir(x.direction).into(),
                    kind: match x.kinds.as_slice() {
                        [TransferKind::CrossProvince] => "cross_province",
                        [TransferKind::IntraProvince] => "intra_province",
                        _ => "",
                    }
                    .into(),
                    name: x.name.clone(),
                })
                .collect(),
            grades: p
                .closed_grades
                .iter()
                .map(|g| GradeRow {
                    grade: g.grade.clone(),
                    term: match g.term {
                        Term::First => "first",
                        Term::Second => "second",
                        Term::Any => "any",
                    }
                    .into(),
                    direction: dir(g.direction).into(),
                    name: g.name.clone(),
                })
                .collect(),
            refuse_suspended: p.refuse_suspended,
            refuse_sanctioned: p.refuse_sanctioned,
            leader_confirm: p.leader_confirm,
            shared_once: p.shared_authority_once,
            level_city: p.extra_levels.contains(&Level::City),
            level_province: p.extra_levels.contains(&Level::Province),
            deadline_days: p.deadline_days.to_string(),
            overdue_action: match p.overdue_action {
                OverdueAction::Flag => "flag",
                OverdueAction::Escalate => "escalate",
                OverdueAction::AutoApprove => "auto_approve",
            }
            .into(),
            evidence: p
                .required_evidence
                .iter()
                .map(|r| EvidenceRow {
                    reason: r.reason_contains.clone(),
                    min_files: r.min_files.to_string(),
                    label: r.label.clone(),
                })
                .collect(),
            ..Default::default()
        };
        f.pad();
        f
    }

    /// Blank rows to fill in, at least one beyond the rows in use.
    fn pad(&mut self) {
        fn fill<T: Default + Clone>(v: &mut Vec<T>, min: usize) {
            let n = min.max(v.len() + 1);
            v.resize(n, T::default());
        }
        fill(&mut self.freezes, FREEZE_ROWS);
        fill(&mut self.grades, GRADE_ROWS);
        fill(&mut self.evidence, EVIDENCE_ROWS);
    }

    fn from_pairs(pairs: &Pairs) -> Self {
        let v = |k: &str| last_value(pairs, k);
        let has = |k: &str| pairs.iter().any(|(key, _)| key == k);
        let mut f = PolicyForm {
            refuse_suspended: has("refuse_suspended"),
            refuse_sanctioned: has("refuse_sanctioned"),
            leader_confirm: has("leader_confirm"),
            shared_once: has("shared_authority_once"),
            level_city: has("level_city"),
            level_province: has("level_province"),
            deadline_days: v("deadline_days"),
            overdue_action: v("overdue_action"),
            note: v("note"),
            ..Default::default()
        };
        for i in 0..MAX_ROWS {
            if has(&format!("fz_start_{i}")) {
                f.freezes.push(FreezeRow {
                    start: v(&format!("fz_start_{i}")),
                    end: v(&format!("fz_end_{i}")),
                    direction: v(&format!("fz_dir_{i}")),
                    kind: v(&format!("fz_kind_{i}")),
                    name: v(&format!("fz_name_{i}")),
                });
            }
            if has(&format!("cg_grade_{i}")) {
                f.grades.push(GradeRow {
                    grade: v(&format!("cg_grade_{i}")),
                    term: v(&format!("cg_term_{i}")),
                    direction: v(&format!("cg_dir_{i}")),
                    name: v(&format!("cg_name_{i}")),
                });
            }
            if has(&format!("ev_reason_{i}")) {
                f.evidence.push(EvidenceRow {
                    reason: v(&format!("ev_reason_{i}")),
                    min_files: v(&format!("ev_min_{i}")),
                    label: v(&format!("ev_label_{i}")),
                });
            }
        }
        f
    }

    /// The policy the form describes; empty rows are ignored. Errors name the row.
    fn to_policy(&self) -> Result<Policy, Error> {
        let direction = |s: &str| match s {
            "in" => Direction::In,
            "out" => Direction::Out,
            _ => Direction::Both,
        };
        let mut freezes = vec![];
        for (i, r) in self.freezes.iter().enumerate() {
            if r.start.is_empty() && r.end.is_empty() && r.name.is_empty() {
                continue;
            }
            let field = freeze_field(i);
            for d in [&r.start, &r.end] {
                if !is_month_day(d) {
                    return Err(Error::validation(
                        field,
                        "请填写开始和结束日期，格式为 MM-DD，如 07-21",
                    ));
                }
            }
            freezes.push(Freeze {
                start: r.start.clone(),
                end: r.end.clone(),
                direction: direction(&r.direction),
                kinds: match r.kind.as_str() {
                    "cross_province" => vec![TransferKind::CrossProvince],
                    "intra_province" => vec![TransferKind::IntraProvince],
                    _ => vec![],
                },
                name: r.name.clone(),
            });
        }
        let mut closed_grades = vec![];
        for (i, r) in self.grades.iter().enumerate() {
            if r.grade.is_empty() && r.name.is_empty() {
                continue;
            }
            if Grade::parse(&r.grade).is_err() {
                return Err(Error::validation(grade_field(i), "请选择年级"));
            }
            closed_grades.push(ClosedGrade {
                grade: r.grade.clone(),
                term: match r.term.as_str() {
                    "first" => Term::First,
                    "second" => Term::Second,
                    _ => Term::Any,
                },
                direction: direction(&r.direction),
                name: r.name.clone(),
            });
        }
        let mut required_evidence = vec![];
        for (i, r) in self.evidence.iter().enumerate() {
            if r.reason.is_empty() && r.min_files.is_empty() && r.label.is_empty() {
                continue;
            }
            let field = evidence_field(i);
            if r.reason.is_empty() || r.label.is_empty() {
                return Err(Error::validation(field, "请填写理由关键词和材料说明"));
            }
            let min_files = if r.min_files.is_empty() {
                1
            } else {
                r.min_files
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(|| Error::validation(field, "至少文件数应为1至5"))?
            };
            required_evidence.push(EvidenceRule {
                reason_contains: r.reason.clone(),
                min_files,
                label: r.label.clone(),
            });
        }
        let deadline_days = self
            .deadline_days
            .parse::<u32>()
            .map_err(|_| Error::validation("deadline_days", "办理时限应为1至60个工作日"))?;
        let overdue_action = match self.overdue_action.as_str() {
            "flag" => OverdueAction::Flag,
            "escalate" => OverdueAction::Escalate,
            "auto_approve" => OverdueAction::AutoApprove,
            _ => return Err(Error::validation("overdue_action", "请选择逾期处理方式")),
        };
        let mut extra_levels = vec![];
        if self.level_city {
            extra_levels.push(Level::City);
        }
        if self.level_province {
            extra_levels.push(Level::Province);
        }
        Ok(Policy {
            freezes,
            closed_grades,
            refuse_suspended: self.refuse_suspended,
            refuse_sanctioned: self.refuse_sanctioned,
            extra_levels,
            leader_confirm: self.leader_confirm,
            shared_authority_once: self.shared_once,
            deadline_days,
            overdue_action,
            required_evidence,
        })
    }
}

/// Field names with a row, as the form marks them (`freezes.0` …). Leaked into `&'static str`
/// from a fixed table so that they fit [`Error::field`].
fn freeze_field(i: usize) -> &'static str {
    FREEZE_FIELDS.get(i).copied().unwrap_or("freezes")
}
fn grade_field(i: usize) -> &'static str {
    GRADE_FIELDS.get(i).copied().unwrap_or("grades")
}
fn evidence_field(i: usize) -> &'static str {
    EVIDENCE_FIELDS.get(i).copied().unwrap_or("evidence")
}

macro_rules! row_fields {
    ($name:ident, $p:literal) => {
        const $name: [&str; 10] = [
            concat!($p, ".0"),
            concat!($p, ".1"),
            concat!($p, ".2"),
            concat!($p, ".3"),
            concat!($p, ".4"),
            concat!($p, ".5"),
            concat!($p, ".6"),
            concat!($p, ".7"),
            concat!($p, ".8"),
            concat!($p, ".9"),
        ];
    };
}
row_fields!(FREEZE_FIELDS, "freezes");
row_fields!(GRADE_FIELDS, "grades");
row_fields!(EVIDENCE_FIELDS, "evidence");

fn is_month_day(s: &str) -> bool {
    let Some((m, d)) = s.split_once('-') else {
        return false;
    };
    if m.len() != 2 || d.len() != 2 {
        return false;
    }
    match (m.parse::<u32>(), d.parse::<u32>()) {
        // 2000 is a leap year: 02-29 is a valid day of a yearly rule.
        (Ok(m), Ok(d)) => chrono::NaiveDate::from_ymd_opt(2000, m, d).is_some(),
        _ => false,
    }
}

/// Where an error of the use case belongs on the form.
fn form_field(e: &Error) -> String {
    match e.field.unwrap_or("") {
        // The form's own checks name the row (`freezes.1`); the use case names the rule only.
        "freezes.start" | "freezes.end" => "freezes".into(),
        f if f.starts_with("closed_grades") => "grades".into(),
        f if f.starts_with("required_evidence") => "evidence".into(),
        f => f.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The page.

#[derive(Template, WebTemplate)]
#[template(path = "policy.html")]
pub struct PolicyPage {
    layout: Layout,
    province: String,
    provinces: Vec<Opt>,
    current: PolicyOut,
    current_at: String,
    rules: Vec<Rule>,
    history: Vec<VersionRow>,
    editable: bool,
    f: PolicyForm,
    grade_opts: Vec<Opt>,
    done: String,
}

impl PolicyPage {
    pub fn grades_for(&self, selected: &str) -> Vec<Opt> {
        self.grade_opts
            .iter()
            .map(|o| Opt {
                value: o.value.clone(),
                label: o.label.clone(),
                selected: o.value == selected,
            })
            .collect()
    }
}

/// The province a user reads by default: an authority's or a school's own; Beijing for the
/// Ministry.
fn default_province(u: &WebUser) -> String {
    u.user
        .region_code
        .as_deref()
        .and_then(|r| RegionCode::parse(r).ok())
        .map(|r| r.province().as_str().to_string())
        .unwrap_or_else(|| "110000".into())
}

fn may_edit(u: &WebUser, province: &str) -> bool {
    match (&u.user.org, u.user.role) {
        (_, Role::NationalAdmin) => true,
        (OrgRef::Authority(r), Role::AuthorityAdmin) => r == province,
        _ => false,
    }
}

fn parse_province(s: &str) -> Result<String, Error> {
    let r = RegionCode::parse(s).map_err(|e| e.at("province"))?;
    if r.level() != RegionLevel::Province {
        return Err(Error::validation(
            "province",
            "请选择省级行政区划代码，如 410000",
        ));
    }
    Ok(r.as_str().to_string())
}

async fn render(
    s: &AppState,
    u: &WebUser,
    province_s: &str,
    form: Option<PolicyForm>,
    done: String,
    status: StatusCode,
) -> PageResult<Response> {
    let mut layout = Layout::new(&s.app, u, "转学政策", "/policy").await;
    let province = if province_s.is_empty() {
        default_province(u)
    } else {
        parse_province(province_s).map_err(|e| layout.fail(e))?
    };
    let current = s.app.policy(&province).await.map_err(|e| layout.fail(e))?;
    let history = s
        .app
        .policy_history(&province)
        .await
        .map_err(|e| layout.fail(e))?;
    let provinces = s
        .app
        .regions(None)
        .await
        .map_err(|e| layout.fail(e))?
        .into_iter()
        .map(|r| Opt::new(r.code, r.name, &province))
        .collect();
    layout.retitle(format!("转学政策（{}）", current.province_name));
    let editable = may_edit(u, &province);
    let f = form.unwrap_or_else(|| PolicyForm::of(&current.policy));
    let grade_opts = Grade::ALL
        .iter()
        .map(|g| Opt {
            value: g.code(),
            label: g.label_zh().to_string(),
            selected: false,
        })
        .collect();
    let page = PolicyPage {
        layout,
        province,
        provinces,
        current_at: current
            .created_at
            .as_ref()
            .map(fmt_time)
            .unwrap_or_default(),
        rules: rules_of(&current.policy),
        history: history
            .into_iter()
            .map(|h| VersionRow {
                version: h.version,
                at: h.created_at.as_ref().map(fmt_time).unwrap_or_default(),
                by: h.created_by.unwrap_or_default(),
                note: h.note,
                summary: summary_of(&h.policy),
            })
            .collect(),
        current,
        editable,
        f,
        grade_opts,
        done,
    };
    Ok((status, page).into_response())
}

pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let done = match last_value(&pairs, "saved").parse::<i64>() {
        Ok(v) => format!(
            "已保存为第{v}版。此后提交的转学申请按新版本执行，已提交的申请仍按提交时的版本办理。"
        ),
        Err(_) => String::new(),
    };
    render(
        &s,
        &u,
        &last_value(&pairs, "province"),
        None,
        done,
        StatusCode::OK,
    )
    .await
}

pub async fn submit(
    State(s): State<AppState>,
    u: WebUser,
    form: Result<Form<Pairs>, FormRejection>,
) -> PageResult<Response> {
    let pairs = form.map(|Form(p)| p).unwrap_or_default();
    if let Err(e) = check_csrf(&u, &last_value(&pairs, "_csrf")) {
        let layout = Layout::new(&s.app, &u, "转学政策", "/policy").await;
        return Err(layout.fail(e));
    }
    let province = last_value(&pairs, "province");
    let mut f = PolicyForm::from_pairs(&pairs);
    let result = match f.to_policy() {
        Ok(policy) => s
            .app
            .set_policy(&u.user, &province, policy, &f.note)
            .await
            .map_err(user_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(saved) => Ok(Redirect::to(&format!(
            "/policy?province={}&saved={}",
            saved.province, saved.version
        ))
        .into_response()),
        Err(e) if e.code == xueji_domain::ErrorCode::Internal => {
            let layout = Layout::new(&s.app, &u, "转学政策", "/policy").await;
            Err(layout.fail(e))
        }
        Err(e) => {
            let status = status_of(&e);
            f.error_field = form_field(&e);
            f.error = e.message;
            f.pad();
            render(&s, &u, &province, Some(f), String::new(), status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Pairs {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_form_round_trips_a_policy_and_ignores_empty_rows() {
        let p = Policy {
            freezes: vec![Freeze {
                start: "07-21".into(),
                end: "08-14".into(),
                direction: Direction::In,
                kinds: vec![TransferKind::CrossProvince],
                name: "暑期停办".into(),
            }],
            closed_grades: vec![ClosedGrade {
                grade: "23".into(),
                term: Term::Second,
                direction: Direction::Both,
                name: "毕业年级".into(),
            }],
            extra_levels: vec![Level::City, Level::Province],
            leader_confirm: true,
            deadline_days: 7,
            overdue_action: OverdueAction::Escalate,
            required_evidence: vec![EvidenceRule {
                reason_contains: "随迁".into(),
                min_files: 2,
                label: "居住证明".into(),
            }],
            ..Policy::default()
        };
        let f = PolicyForm::of(&p);
        assert_eq!(f.freezes.len(), FREEZE_ROWS);
        assert_eq!(f.to_policy().unwrap(), p);
    }

    #[test]
    fn form_fields_are_read_and_rows_named_in_errors() {
        let f = PolicyForm::from_pairs(&pairs(&[
            ("fz_start_0", ""),
            ("fz_end_0", ""),
            ("fz_name_0", ""),
            ("fz_start_1", "7-21"),
            ("fz_end_1", "08-14"),
            ("deadline_days", "10"),
            ("overdue_action", "flag"),
        ]));
        let e = f.to_policy().unwrap_err();
        assert_eq!(e.field, Some("freezes.1"));
        let f = PolicyForm::from_pairs(&pairs(&[
            ("refuse_suspended", "on"),
            ("level_province", "on"),
            ("deadline_days", "0"),
            ("overdue_action", "auto_approve"),
        ]));
        let p = f.to_policy().unwrap();
        assert!(p.refuse_suspended && !p.leader_confirm && !p.shared_authority_once);
        assert_eq!(p.extra_levels, vec![Level::Province]);
        assert_eq!(p.overdue_action, OverdueAction::AutoApprove);
        assert_eq!(
            p.validate().unwrap_err().field,
            Some("deadline_days"),
            "0 days is the use case's to refuse"
        );
        let f = PolicyForm::from_pairs(&pairs(&[
            ("ev_reason_0", "随迁"),
            ("ev_min_0", ""),
            ("ev_label_0", ""),
            ("deadline_days", "10"),
            ("overdue_action", "flag"),
        ]));
        assert_eq!(f.to_policy().unwrap_err().field, Some("evidence.0"));
    }

    #[test]
    fn errors_land_beside_their_rows() {
        assert_eq!(
            form_field(&Error::validation("freezes.1", "x")),
            "freezes.1"
        );
        assert_eq!(
            form_field(&Error::validation("freezes.start", "x")),
            "freezes"
        );
        assert_eq!(
            form_field(&Error::validation("closed_grades.grade", "x")),
            "grades"
        );
        assert_eq!(
            form_field(&Error::validation("deadline_days", "x")),
            "deadline_days"
        );
    }

    #[test]
    fn month_days() {
        assert!(is_month_day("07-21") && is_month_day("02-29"));
        assert!(!is_month_day("7-21") && !is_month_day("13-01") && !is_month_day("02-30"));
    }

    #[test]
    fn rules_read_in_chinese() {
        let rules = rules_of(&Policy::default());
        let rule = |label: &str| rules.iter().find(|r| r.label == label).expect(label);
        assert_eq!(rules[0].lines, vec!["无"]);
        assert!(rule("办理时限").lines[0].contains("10个工作日"));
        assert_eq!(rule("受处分学生").lines, vec!["不限制"]);
    }
}
