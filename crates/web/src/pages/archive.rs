//! 电子学籍档案 beyond the basic facts: the history shown on the student page (identity checks,
//! problem records, transfers with their approvals, status changes), and the printable 学籍卡 /
//! 学生基本信息表 (`GET /students/{student_no}/card`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use xueji_app::App;
use xueji_app::archive::{ArchiveStep, StudentArchive};
use xueji_app::auth::CurrentUser;
use xueji_app::problems as pr;
use xueji_app::students::status_label_zh;
use xueji_domain::Error;
use xueji_domain::transfer::{TransferKind, TransferStatus};

use super::{Layout, PageResult, fmt_date, fmt_time, gender_label, grade_label, url_encode};
use crate::AppState;
use crate::session::WebUser;

pub struct CheckRow {
    pub result: &'static str,
    pub adapter: String,
    pub at: String,
}

pub struct StepRow {
    pub label: &'static str,
    pub party: String,
    pub decision: &'static str,
    pub opinion: String,
    pub actor: String,
    pub at: String,
}

pub struct ProblemView {
    pub href: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub detail: String,
    pub created: String,
    pub resolution: &'static str,
    /// One line per action: what, when, the decision.
    pub actions: Vec<String>,
}

pub struct TransferView {
    pub href: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub from: String,
    pub to: String,
    pub grades: String,
    pub created: String,
    pub pulled: String,
    pub steps: Vec<StepRow>,
}

pub struct ChangeView {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub created: String,
    pub applied: String,
    pub steps: Vec<StepRow>,
}

/// What the student page shows below the basic facts.
#[derive(Default)]
pub struct History {
    pub identity_status: &'static str,
    pub checks: Vec<CheckRow>,
    pub problems: Vec<ProblemView>,
    pub transfers: Vec<TransferView>,
    pub changes: Vec<ChangeView>,
}

fn identity_status_label(s: &str) -> &'static str {
    match s {
        "pending" => "待公安比对",
        "passed" => "比对通过",
        "failed" => "比对未通过（问题学籍）",
        "not_applicable" => "不适用（非居民身份证）",
        _ => "",
    }
}

fn check_label(result: &str) -> &'static str {
    match result {
        "match" => "比对通过",
        "not_found" => "身份证号码不存在",
        "name_mismatch" => "姓名与身份证号码不匹配",
        "confirmed_by_evidence" => "佐证材料经主管部门审核通过",
        _ => "其他",
    }
}

fn step_label(code: &str) -> &'static str {
    match code {
        "in_school" => "转入学校审核",
        "out_school" => "转出学校审核",
        "in_authority" => "转入学籍主管部门审核",
        "out_authority" => "转出学籍主管部门审核",
        "shared_authority" => "学籍主管部门审核",
        "school" | "school_review" => "学校审核",
        "authority" | "authority_review" => "学籍主管部门审核",
        c if c.ends_with("leader") => "主管部门领导确认",
        _ => "审核",
    }
}

fn decision_label(d: Option<&str>) -> &'static str {
    match d {
        Some("approve") => "同意",
        Some("reject") | Some("refuse") => "不同意",
        Some(_) => "已处理",
        None => "未审核",
    }
}

/// The Chinese name of a 学籍异动 kind (the codes of `change_requests.kind`).
fn change_kind_label(kind: &str) -> String {
    match kind {
        "suspension" => "休学",
        "resumption" => "复学",
        "withdrawal" => "退学",
        "dropout" => "辍学",
        "death" => "死亡",
        "abroad" => "出境学习",
        "return_from_abroad" => "出境返回",
        "repeat_grade" => "留级",
        "skip_grade" => "跳级",
        "special_education" => "转入特教/工读",
        "key_change" => "关键数据变更",
        other => other,
    }
    .to_string()
}

fn change_status_label(s: &str) -> String {
    match s {
        "pending_school" => "待学校审核",
        "pending_authority" => "待学籍主管部门审核",
        "applied" => "已生效",
        "refused" | "rejected" => "未获同意",
        "withdrawn" => "已撤销",
        other => other,
    }
    .to_string()
}

fn steps(list: Vec<ArchiveStep>) -> Vec<StepRow> {
    list.into_iter()
        .map(|s| StepRow {
            label: step_label(&s.code),
            party: s.party_code,
            decision: decision_label(s.decision.as_deref()),
            opinion: s.opinion.unwrap_or_default(),
            actor: s.actor_name.unwrap_or_default(),
            at: s.decided_at.as_ref().map(fmt_time).unwrap_or_default(),
        })
        .collect()
}

impl History {
    pub fn from_archive(a: StudentArchive) -> (xueji_app::students::StudentDetail, History) {
        let h = History {
            identity_status: identity_status_label(&a.identity_status),
            checks: a
                .identity_checks
                .into_iter()
                .map(|c| CheckRow {
                    result: check_label(&c.result),
                    adapter: if c.simulated {
                        format!("{}（模拟）", c.adapter)
                    } else {
                        c.adapter
                    },
                    at: fmt_time(&c.checked_at),
                })
                .collect(),
            problems: a
                .problems
                .into_iter()
                .map(|p| ProblemView {
                    href: format!("/problems/{}", p.id),
                    kind: pr::kind_label_zh(&p.kind),
                    status: pr::status_label_zh(&p.status),
                    detail: p.detail,
                    created: fmt_time(&p.created_at),
                    resolution: p
                        .resolution
                        .as_deref()
                        .map(pr::resolution_label_zh)
                        .unwrap_or(""),
                    actions: p
                        .actions
                        .into_iter()
                        .map(|x| {
                            format!(
                                "{}：{}（{} {}）{}",
                                pr::action_label_zh(&x.action),
                                x.reason,
                                x.requested_by,
                                fmt_date(&x.requested_at),
                                match (&x.decided_by, &x.decided_at) {
                                    (Some(by), Some(at)) => format!(
                                        "，主管部门{}（{} {}）{}",
                                        pr::action_status_label_zh(&x.status),
                                        by,
                                        fmt_date(at),
                                        x.opinion
                                            .as_deref()
                                            .map(|o| format!("：{o}"))
                                            .unwrap_or_default()
                                    ),
                                    _ => "，待主管部门审核".to_string(),
                                }
                            )
                        })
                        .collect(),
                })
                .collect(),
            transfers: a
                .transfers
                .into_iter()
                .map(|t| TransferView {
                    href: format!("/transfers/{}", t.id),
                    kind: TransferKind::parse(&t.kind)
                        .map(|k| k.label_zh())
                        .unwrap_or("转学"),
                    status: TransferStatus::parse(&t.status)
                        .map(|s| s.label_zh())
                        .unwrap_or(""),
                    from: format!("{}（{}）", t.from_school_name, t.from_school),
                    to: format!("{}（{}）", t.to_school_name, t.to_school),
                    grades: format!(
                        "{} → {}",
                        grade_label(&t.from_grade),
                        grade_label(&t.to_grade)
                    ),
                    created: fmt_time(&t.created_at),
                    pulled: t.pulled_at.as_ref().map(fmt_time).unwrap_or_default(),
                    steps: steps(t.steps),
                })
                .collect(),
            changes: a
                .changes
                .into_iter()
                .map(|c| ChangeView {
                    kind: change_kind_label(&c.kind),
                    status: change_status_label(&c.status),
                    reason: c.reason,
                    created: fmt_time(&c.created_at),
                    applied: c.applied_at.as_ref().map(fmt_time).unwrap_or_default(),
                    steps: steps(c.steps),
                })
                .collect(),
        };
        (a.student, h)
    }
}

/// The archive of a student the user may see.
pub async fn load(
    app: &App,
    user: &CurrentUser,
    no: &str,
) -> xueji_app::AppResult<(xueji_app::students::StudentDetail, History)> {
    Ok(History::from_archive(app.student_archive(user, no).await?))
}

pub struct CardEnrollment {
    pub school_name: String,
    pub grade: String,
    pub class_name: String,
    pub status: &'static str,
    pub period: String,
}

/// 学籍卡 / 学生基本信息表, for printing.
#[derive(Template, WebTemplate)]
#[template(path = "student_card.html")]
pub struct CardPage {
    layout: Layout,
    student_no: String,
    student_href: String,
    name: String,
    gender: &'static str,
    birth_date: String,
    ethnicity: String,
    id_number: String,
    id_full: bool,
    school_name: String,
    school: String,
    grade: String,
    class_name: String,
    status: &'static str,
    identity_status: &'static str,
    created_at: String,
    numbers: Vec<(String, &'static str, String)>,
    enrollments: Vec<CardEnrollment>,
    printed_on: String,
}

pub fn enrollment_status(s: &str) -> &'static str {
    match s {
        "active" => "在籍",
        "transferred_out" => "已转出",
        "promoted" => "已升级",
        "graduated" => "毕业",
        "deleted" => "已删除",
        _ => "其他",
    }
}

pub async fn card(
    State(s): State<AppState>,
    u: WebUser,
    path: Result<Path<String>, PathRejection>,
) -> PageResult<CardPage> {
    let layout = Layout::new(&s.app, &u, "学籍卡", "/students").await;
    let no = path
        .map(|Path(p)| p)
        .map_err(|_| layout.fail(Error::not_found("该学生")))?;
    let (d, h) = load(&s.app, &u.user, &no)
        .await
        .map_err(|e| layout.fail(e))?;
    let sm = d.summary;
    Ok(CardPage {
        layout,
        student_href: format!("/students/{}", url_encode(&sm.student_no)),
        id_full: d.id_number.is_some(),
        id_number: d.id_number.unwrap_or(sm.id_number_masked),
        student_no: sm.student_no,
        name: sm.name,
        gender: gender_label(&sm.gender),
        birth_date: sm.birth_date.format("%Y-%m-%d").to_string(),
        ethnicity: d.ethnicity_name,
        school_name: d.school_name.unwrap_or_default(),
        school: d.school.unwrap_or_default(),
        grade: sm.grade.as_deref().map(grade_label).unwrap_or_default(),
        class_name: sm.class_name.unwrap_or_default(),
        status: status_label_zh(&sm.status),
        identity_status: h.identity_status,
        created_at: fmt_date(&d.created_at),
        numbers: d
            .numbers
            .into_iter()
            .map(|n| {
                (
                    n.student_no,
                    if n.kind == "formal" {
                        "正式学籍号"
                    } else {
                        "临时学籍号"
                    },
                    format!(
                        "{} 至 {}",
                        fmt_date(&n.assigned_at),
                        n.replaced_at
                            .as_ref()
                            .map(fmt_date)
                            .unwrap_or_else(|| "今".into())
                    ),
                )
            })
            .collect(),
        enrollments: d
            .enrollments
            .into_iter()
            .map(|e| CardEnrollment {
                school_name: e.school_name,
                grade: grade_label(&e.grade),
                class_name: e.class_name.unwrap_or_default(),
                status: enrollment_status(&e.status),
                period: format!(
                    "{} 至 {}",
                    fmt_date(&e.started_at),
                    e.ended_at
                        .as_ref()
                        .map(fmt_date)
                        .unwrap_or_else(|| "今".into())
                ),
            })
            .collect(),
        printed_on: s.app.clock.today().format("%Y年%m月%d日").to_string(),
    })
}
