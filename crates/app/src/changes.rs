//! 学籍异动 (status changes) and 关键数据变更 (key-data changes): one machinery, the change request.
//!
//! The school's administrator files a request for one of its students; the school's reviewer
//! confirms it; the school's supervising authority approves it, and the effect is applied to the
//! student and the enrollment history in the same transaction as the approval, its audit row and
//! its notifications. The pure rules (which kind fits which student, who acts when) live in
//! `xueji_domain::change`. Filing takes the business lock (在办业务, `open_businesses`, kind
//! `status_change` or `key_change`); the end of the request (applied, refused, withdrawn)
//! releases it. A student with an open transfer cannot get a request, and the reverse.
//!
//! Key-data changes (name, identity document, gender, birth date) need evidence. A new identity
//! number is validated like at registration (GB 11643 check digit, known province, gender and
//! birth date agreeing) and goes through the nationwide duplicate check when filed and again when
//! applied. The student number that follows:
//! - a formal `G` number is derived from the identity number, so it becomes `G` + the new number;
//!   the old one stays in `student_numbers` (replaced) and still finds the student. The
//!   authority's approval of the documentary evidence stands in for a new 公安比对, so the record
//!   stays `passed`;
//! - a temporary `L` or self-coded `J` number is kept (it does not encode the identity number);
//!   a record with a 居民身份证 goes back to `pending`, so that the next identity check issues the
//!   `G` number from the corrected data.
//!
//! Other fields (民族, the class within the same grade) are edited directly by the school's
//! administrator ([`App::update_student`]), audited.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::change::{
    self as rules, ChangeAction, ChangeKind, ChangeNotice, ChangeState, ChangeStatus, Effect,
    KindParams, StudentFacts, StudentStatus,
};
use xueji_domain::ids::{Gender, Grade, IdNumber, StudentNo, mask_document};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditEvent};
use crate::auth::{CurrentUser, Scope};
use crate::db::Tx;
use crate::error::{AppError, AppResult};
use crate::notifications::notify;
use crate::paging::{Page, Paged};
use crate::registration::{self, RESIDENT_ID, Refs};
use crate::students::StudentDetail;
use crate::transfers::{
    Evidence, EvidenceOut, MAX_EVIDENCE_BYTES, MAX_EVIDENCE_FILES, evidence_type,
};
use crate::{App, on_pool, on_tx};

/// An evidence file inside a JSON request (the API has no multipart form).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceJson {
    pub filename: String,
    /// The file's bytes in standard base64 (JPG, PNG or PDF, at most 2 MB).
    pub content_base64: String,
}

/// What the school's administrator files (异动申请 / 关键数据变更申请).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChange {
    /// `suspension` 休学, `resumption` 复学, `withdrawal` 退学 (高中), `dropout` 辍学, `death` 死亡,
    /// `abroad` 出境学习, `return_from_abroad` 回国复学, `repeat_grade` 留级, `skip_grade` 跳级,
    /// `special_education` 转入特教/工读, `key_change` 关键数据变更.
    pub kind: String,
    /// 异动原因 / 变更理由.
    pub reason: String,
    /// 休学起始日期 (suspension).
    #[serde(default)]
    pub from_date: Option<NaiveDate>,
    /// 休学截止日期 (suspension).
    #[serde(default)]
    pub until_date: Option<NaiveDate>,
    /// Target grade (resumption, return_from_abroad; optional).
    #[serde(default)]
    pub to_grade: Option<String>,
    /// Target class: of the school in the resulting grade (optional), or of the 特殊教育学校 /
    /// 专门学校 for `special_education` (required).
    #[serde(default)]
    pub to_class_id: Option<i64>,
    /// key_change: the new name.
    #[serde(default)]
    pub new_name: Option<String>,
    /// key_change: the new identity document type (code; default unchanged).
    #[serde(default)]
    pub new_id_type: Option<String>,
    /// key_change: the new identity document number.
    #[serde(default)]
    pub new_id_number: Option<String>,
    /// key_change: the new gender (`male` / `female`); derived from a new 居民身份证 if absent.
    #[serde(default)]
    pub new_gender: Option<String>,
    /// key_change: the new birth date; derived from a new 居民身份证 if absent.
    #[serde(default)]
    pub new_birth_date: Option<String>,
    /// Evidence files (required for key_change).
    #[serde(default)]
    pub evidence: Vec<EvidenceJson>,
}

/// What a request asks, as stored (`payload`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_date: Option<NaiveDate>,
    /// The grade afterwards, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_grade: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_class_id: Option<i64>,
    /// special_education: the receiving school.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_school: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id_type: Option<String>,
    /// Masked in answers unless the caller's school holds the student.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id_number: Option<String>,
    /// `male` / `female`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_birth_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeStepOut {
    /// `school` (the school's reviewer) or `authority` (the supervising authority).
    pub step: String,
    /// School code or authority region code.
    pub party: String,
    pub party_name: String,
    /// 学校审核 / 学籍主管部门审批.
    pub party_label: String,
    /// `approve`, `reject`, or null.
    pub decision: Option<String>,
    pub opinion: Option<String>,
    /// Username of who decided.
    pub actor: Option<String>,
    pub actor_name: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// `done`, `waiting`, `pending` or `skipped`.
    pub state: String,
}

/// A change request as its detail shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeDetail {
    pub id: i64,
    pub kind: String,
    pub kind_label: String,
    /// `pending_school`, `pending_authority`, `applied`, `refused`, `withdrawn`.
    pub status: String,
    pub status_label: String,
    pub student_no: String,
    pub student_name: String,
    pub school: String,
    pub school_name: String,
    /// Region code of the school's supervising authority.
    pub authority: String,
    pub reason: String,
    pub payload: ChangePayload,
    /// The record's values when the request was filed (identity number masked).
    pub before: serde_json::Value,
    pub steps: Vec<ChangeStepOut>,
    pub evidence: Vec<EvidenceOut>,
    /// The waiting step (`school` / `authority`), null once ended.
    pub current_step: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    pub withdraw_reason: Option<String>,
    /// Optimistic-concurrency version; changes with every action.
    pub version: i64,
    /// A duty that comes with the request (辍学: 劝返 and 控辍保学 report), or null.
    pub notice: Option<String>,
}

/// One row of the request list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeSummary {
    pub id: i64,
    pub kind: String,
    pub kind_label: String,
    pub status: String,
    pub status_label: String,
    pub student_no: String,
    pub student_name: String,
    pub school: String,
    pub school_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Filters of the request list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ChangeFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    /// 学校标识码.
    pub school: Option<String>,
    /// Any number the student has held.
    pub student: Option<String>,
    /// Only those waiting for the caller's organisation to decide.
    pub todo: Option<bool>,
}

/// Non-key fields a school's administrator edits directly (PATCH).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StudentPatch {
    /// 民族 code or name.
    #[serde(default)]
    pub ethnicity: Option<String>,
    /// Another class of the student's school in the same grade (分班调整).
    #[serde(default)]
    pub class_id: Option<i64>,
    /// The record's version as read; a different current version is `conflict`.
    #[serde(default)]
    pub version: Option<i64>,
    /// Key data: refused here (关键数据变更 goes through a request).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub id_type: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub id_number: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub gender: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub birth_date: Option<serde_json::Value>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct StudentRec {
    id: i64,
    student_no: String,
    name: String,
    gender: String,
    birth_date: NaiveDate,
    id_type: String,
    id_number: String,
    ethnicity: String,
    status: String,
    school_id: Option<i64>,
    grade: Option<String>,
    class_id: Option<i64>,
    region_code: Option<String>,
    version: i64,
    identity_status: String,
}

const STUDENT_REC: &str = "SELECT id, student_no, name, gender, birth_date, id_type, id_number, ethnicity, status, \
    school_id, grade, class_id, region_code, version, identity_status FROM students";

#[derive(Debug, Clone, sqlx::FromRow)]
struct ChangeRow {
    id: i64,
    kind: String,
    status: String,
    student_id: i64,
    student_no: String,
    student_name: String,
    school_id: i64,
    school_code: String,
    region_code: String,
    authority_region: String,
    payload: String,
    before_json: String,
    reason: String,
    filed_by: i64,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    applied_at: Option<DateTime<Utc>>,
    withdraw_reason: Option<String>,
    school_name: String,
}

const CHANGE_SELECT: &str = "SELECT cr.id, cr.kind, cr.status, cr.student_id, cr.student_no, cr.student_name, \
    cr.school_id, cr.school_code, cr.region_code, cr.authority_region, cr.payload, cr.before_json, cr.reason, \
    cr.filed_by, cr.version, cr.created_at, cr.updated_at, cr.applied_at, cr.withdraw_reason, sc.name AS school_name \
    FROM change_requests cr JOIN schools sc ON sc.id = cr.school_id";

#[derive(Debug, Clone, sqlx::FromRow)]
struct StepRow {
    idx: i64,
    code: String,
    party_code: String,
    decision: Option<String>,
    opinion: Option<String>,
    actor_username: Option<String>,
    actor_name: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    party_name: Option<String>,
}

fn kind_of(s: &str) -> ChangeKind {
    ChangeKind::parse(s).unwrap_or(ChangeKind::KeyChange)
}

fn status_of(s: &str) -> ChangeStatus {
    ChangeStatus::parse(s).unwrap_or(ChangeStatus::Refused)
}

fn gender_word(code: &str) -> String {
    match Gender::parse(code) {
        Some(Gender::Male) => "male".into(),
        Some(Gender::Female) => "female".into(),
        None => "unknown".into(),
    }
}

/// Standard base64 (RFC 4648, padding optional, whitespace ignored).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0u32;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Evidence files checked against the transfer limits: (file, content type).
fn checked_evidence(files: Vec<Evidence>) -> AppResult<Vec<(Evidence, &'static str)>> {
    let files: Vec<Evidence> = files.into_iter().filter(|f| !f.bytes.is_empty()).collect();
    if files.len() > MAX_EVIDENCE_FILES {
        return Err(Error::validation(
            "evidence",
            format!("佐证材料最多{MAX_EVIDENCE_FILES}个文件"),
        )
        .into());
    }
    let mut out = vec![];
    for f in files {
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
        out.push((f, ct));
    }
    Ok(out)
}

/// The key data a key_change asks for, validated, with what differs from the record.
struct KeyData {
    name: String,
    id_type: String,
    id_number: String,
    gender: Gender,
    birth_date: NaiveDate,
    changed: Vec<&'static str>,
}

fn at(e: Error, field: &'static str) -> Error {
    e.at(field)
}

/// Validates the new key data against the registration rules.
fn key_data(refs: &Refs, st: &StudentRec, req: &NewChange, today: NaiveDate) -> AppResult<KeyData> {
    let some = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = match some(&req.new_name) {
        Some(n) => registration::check_name(&n).map_err(|e| at(e.into_error(), "new_name"))?,
        None => st.name.clone(),
    };
    let id_type = match some(&req.new_id_type) {
        Some(t) => refs
            .id_type(&t)
            .map_err(|e| at(e.into_error(), "new_id_type"))?,
        None => st.id_type.clone(),
    };
    let number_input = some(&req.new_id_number).unwrap_or_else(|| st.id_number.clone());
    let (id_number, id) = registration::check_document(refs, &id_type, &number_input)
        .map_err(|e| at(e.into_error(), "new_id_number"))?;
    let number_changed = id_number != st.id_number || id_type != st.id_type;
    let gender = match some(&req.new_gender) {
        Some(g) => registration::parse_gender(&g).map_err(|e| at(e.into_error(), "new_gender"))?,
        // A new resident number says the gender; otherwise the record's stays.
        None => match (&id, number_changed) {
            (Some(id), true) => id.gender(),
            _ => Gender::parse(&st.gender).unwrap_or(Gender::Male),
        },
    };
    let birth_date = match some(&req.new_birth_date) {
        Some(b) => {
            registration::parse_birth_date(&b).map_err(|e| at(e.into_error(), "new_birth_date"))?
        }
        None => match (&id, number_changed) {
            (Some(id), true) => id.birth_date(),
            _ => st.birth_date,
        },
    };
    if let Some(e) =
        registration::cross_check(id.as_ref(), Some(gender), Some(birth_date), None, today)
            .into_iter()
            .next()
    {
        let field = match e.field {
            registration::Field::Gender => "new_gender",
            registration::Field::BirthDate => "new_birth_date",
            _ => "new_id_number",
        };
        return Err(at(e.into_error(), field).into());
    }
    let mut changed = vec![];
    if name != st.name {
        changed.push("name");
    }
    if id_type != st.id_type {
        changed.push("id_type");
    }
    if id_number != st.id_number {
        changed.push("id_number");
    }
    if gender.code() != st.gender {
        changed.push("gender");
    }
    if birth_date != st.birth_date {
        changed.push("birth_date");
    }
    if changed.is_empty() {
        return Err(Error::validation(
            "new_name",
            "请填写要变更的关键数据（姓名、身份证件、性别或出生日期），且须与现有学籍信息不同",
        )
        .into());
    }
    Ok(KeyData {
        name,
        id_type,
        id_number,
        gender,
        birth_date,
        changed,
    })
}

fn duplicate() -> Error {
    Error::new(
        ErrorCode::DuplicatePerson,
        "新的身份证件号码已被其他学籍使用（一人一籍），请核对证件后重新填写",
    )
    .at("new_id_number")
}

fn notice_text(
    n: ChangeNotice,
    kind: ChangeKind,
    name: &str,
    school: &str,
    opinion: &str,
) -> String {
    let k = kind.label_zh();
    match n {
        ChangeNotice::Waiting => format!("学籍异动：{school}学生{name}的{k}申请待贵单位审核。"),
        ChangeNotice::Applied => {
            format!("学籍异动：{school}学生{name}的{k}申请已获学籍主管部门批准并生效。")
        }
        ChangeNotice::Refused => {
            format!("学籍异动：{school}学生{name}的{k}申请未获同意（{opinion}），流程已终止。")
        }
        ChangeNotice::Withdrawn => format!("学籍异动：{school}学生{name}的{k}申请已由学校撤销。"),
        ChangeNotice::DropoutReport => format!(
            "控辍保学：{school}报告学生{name}辍学，请督促学校劝返复学，并会同乡镇人民政府落实控辍保学、登记劝返情况。"
        ),
    }
}

impl App {
    async fn student_rec(&self, student_no: &str) -> AppResult<Option<StudentRec>> {
        let sql = format!(
            "{STUDENT_REC} WHERE id = (SELECT student_id FROM student_numbers WHERE student_no = $1)"
        );
        let no = student_no.trim().to_uppercase();
        Ok(
            on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(&no).fetch_optional(p).await)?,
        )
    }

    /// The student a school's administrator acts on: only a student of their own school.
    /// Outsiders get `not_found`; insiders in another role `forbidden`.
    async fn own_student(
        &self,
        user: &CurrentUser,
        student_no: &str,
        what: &str,
    ) -> AppResult<StudentRec> {
        let Some(st) = self.student_rec(student_no).await? else {
            return Err(Error::not_found("该学生").into());
        };
        let visible = match (st.school_id, st.region_code.as_deref()) {
            (Some(sid), Some(region)) => user.scope().covers_school(sid, region),
            _ => false,
        };
        if !visible {
            return Err(Error::not_found("该学生").into());
        }
        if user.role != Role::SchoolAdmin || !matches!(user.scope(), Scope::School { .. }) {
            return Err(Error::forbidden(format!("{what}须由学生所在学校的学籍管理员办理")).into());
        }
        Ok(st)
    }

    /// A class of a school: (grade, capacity, students now).
    async fn class_info(
        &self,
        class_id: i64,
        school_id: i64,
    ) -> AppResult<Option<(String, i64, i64)>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT c.grade, c.capacity, (SELECT COUNT(*) FROM students s WHERE s.class_id = c.id) \
             FROM classes c WHERE c.id = $1 AND c.school_id = $2"
        ).bind(class_id).bind(school_id).fetch_optional(p).await)?)
    }

    /// Files a change request (异动申请 / 关键数据变更申请) for a student of the caller's school.
    pub async fn file_change(
        &self,
        user: &CurrentUser,
        student_no: &str,
        req: &NewChange,
        mut evidence: Vec<Evidence>,
    ) -> AppResult<ChangeDetail> {
        let st = self.own_student(user, student_no, "学籍异动申请").await?;
        let kind = ChangeKind::parse(req.kind.trim())
            .ok_or_else(|| Error::validation("kind", "异动类型无效"))?;
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(Error::new(ErrorCode::ReasonRequired, "请填写异动原因")
                .at("reason")
                .into());
        }
        if reason.chars().count() > 500 {
            return Err(Error::validation("reason", "异动原因不超过500字").into());
        }
        for e in &req.evidence {
            let bytes = decode_base64(&e.content_base64).ok_or_else(|| {
                Error::validation(
                    "evidence",
                    format!("材料“{}”的内容不是有效的base64编码", e.filename),
                )
            })?;
            evidence.push(Evidence {
                filename: e.filename.clone(),
                bytes,
            });
        }
        let files = checked_evidence(evidence)?;
        if kind.needs_evidence() && files.is_empty() {
            return Err(Error::validation(
                "evidence",
                "关键数据变更须上传佐证材料（如户口簿、身份证件、出生医学证明的扫描件）",
            )
            .into());
        }
        let school_id = st.school_id.ok_or_else(|| Error::not_found("该学生"))?;
        let OrgRef::School(school_code) = &user.org else {
            return Err(Error::forbidden("学籍异动申请须由学校的学籍管理员办理").into());
        };
        let school = self
            .school_unscoped(school_code)
            .await?
            .ok_or_else(|| Error::not_found("本校"))?;
        let status = StudentStatus::parse(&st.status)
            .ok_or_else(|| Error::new(ErrorCode::Conflict, "该学生的学籍状态无法办理异动"))?;
        let current_grade = st.grade.as_deref().and_then(|g| Grade::parse(g).ok());
        let facts = StudentFacts {
            status,
            grade: current_grade,
            school_grades: school
                .grades
                .iter()
                .filter_map(|g| Grade::parse(g).ok())
                .collect(),
        };
        let asked_grade = match req
            .to_grade
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(g) => Some(Grade::parse(g).map_err(|e| e.at("to_grade"))?),
            None => None,
        };
        let mut params = KindParams {
            from: req.from_date,
            until: req.until_date,
            grade: asked_grade,
            ..Default::default()
        };
        let mut payload = ChangePayload::default();
        let mut target_school = None;
        if kind == ChangeKind::SpecialEducation {
            let class_id = req.to_class_id.ok_or_else(|| {
                Error::validation("to_class_id", "请选择转入的特殊教育学校或专门学校的班级")
            })?;
            let target: Option<(i64, String, String, String, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT s.id, s.code, s.school_type, s.grades, c.grade FROM classes c JOIN schools s ON s.id = c.school_id WHERE c.id = $1"
            ).bind(class_id).fetch_optional(p).await)?;
            let Some((tid, tcode, ttype, tgrades, cgrade)) = target else {
                return Err(Error::validation("to_class_id", "没有这个班级").into());
            };
            params.target_school_type = Some(ttype);
            params.target_school_grades = tgrades
                .split(',')
                .filter_map(|g| Grade::parse(g).ok())
                .collect();
            let region: String = on_pool!(self.db.read(), p => sqlx::query_scalar(
                "SELECT region_code FROM schools WHERE id = $1").bind(tid).fetch_one(p).await)?;
            params.same_province = region.get(..2) == school.region.get(..2);
            params.grade = Some(Grade::parse(&cgrade)?);
            payload.to_school = Some(tcode);
            target_school = Some(tid);
        }
        let effect = rules::check_kind(kind, &facts, &params)?;
        if kind == ChangeKind::SpecialEducation && params.grade != current_grade {
            return Err(
                Error::validation("to_class_id", "转入班级的年级应与学生现年级一致").into(),
            );
        }
        payload.from_date = (kind == ChangeKind::Suspension)
            .then_some(req.from_date)
            .flatten();
        payload.until_date = (kind == ChangeKind::Suspension)
            .then_some(req.until_date)
            .flatten();
        payload.to_grade = effect.grade.map(|g| g.code());
        if kind != ChangeKind::SpecialEducation
            && let Some(class_id) = req.to_class_id
        {
            if !matches!(
                kind,
                ChangeKind::Resumption
                    | ChangeKind::ReturnFromAbroad
                    | ChangeKind::RepeatGrade
                    | ChangeKind::SkipGrade
            ) {
                return Err(Error::validation(
                    "to_class_id",
                    format!("{}不需要选择班级", kind.label_zh()),
                )
                .into());
            }
            let target_grade = effect.grade.or(current_grade);
            let Some((cgrade, capacity, enrolled)) = self.class_info(class_id, school_id).await?
            else {
                return Err(Error::validation("to_class_id", "所选班级不是本校的班级").into());
            };
            if Some(cgrade.as_str()) != target_grade.map(|g| g.code()).as_deref() {
                return Err(
                    Error::validation("to_class_id", "所选班级与异动后的年级不一致").into(),
                );
            }
            if enrolled >= capacity && st.class_id != Some(class_id) {
                return Err(Error::new(
                    ErrorCode::ClassFull,
                    format!("所选班级已满（{enrolled}/{capacity}人），请选择其他班级"),
                )
                .at("to_class_id")
                .into());
            }
            payload.to_class_id = Some(class_id);
        }
        if let Some(tid) = target_school {
            let class_id = req.to_class_id.unwrap_or_default();
            let Some((_, capacity, enrolled)) = self.class_info(class_id, tid).await? else {
                return Err(Error::validation("to_class_id", "没有这个班级").into());
            };
            if enrolled >= capacity {
                return Err(Error::new(
                    ErrorCode::ClassFull,
                    format!("转入班级已满（{enrolled}/{capacity}人）"),
                )
                .at("to_class_id")
                .into());
            }
            payload.to_class_id = Some(class_id);
        }
        let today = self.clock.today();
        if kind == ChangeKind::KeyChange {
            let refs = Refs::load(self).await?;
            let k = key_data(&refs, &st, req, today)?;
            if k.changed
                .iter()
                .any(|c| *c == "id_number" || *c == "id_type")
            {
                let holder: Option<i64> = on_pool!(self.db.read(), p => sqlx::query_scalar(
                    "SELECT id FROM students WHERE id_type = $1 AND id_number = $2 AND id <> $3"
                ).bind(&k.id_type).bind(&k.id_number).bind(st.id).fetch_optional(p).await)?;
                if holder.is_some() {
                    return Err(duplicate().into());
                }
            }
            payload.new_name = Some(k.name);
            payload.new_id_type = Some(k.id_type);
            payload.new_id_number = Some(k.id_number);
            payload.new_gender = Some(gender_word(k.gender.code()));
            payload.new_birth_date = Some(k.birth_date);
        }
        let before = serde_json::json!({
            "status": st.status, "grade": st.grade, "class_id": st.class_id, "school": school.code,
            "name": st.name, "gender": gender_word(&st.gender), "birth_date": st.birth_date,
            "id_type": st.id_type, "id_number_masked": mask_document(&st.id_number),
            "student_no": st.student_no,
        });
        let payload_json =
            serde_json::to_string(&payload).map_err(|e| AppError::Other(e.to_string()))?;
        let (status, notices) = rules::new_request(&school.code);
        let now = self.clock.now();

        let mut tx = self.db.begin().await?;
        let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
            "INSERT INTO change_requests (kind, status, student_id, student_no, student_name, school_id, school_code, \
             region_code, authority_region, payload, before_json, reason, filed_by, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $14) RETURNING id"
        ).bind(kind.as_str()).bind(status.as_str()).bind(st.id).bind(&st.student_no).bind(&st.name)
        .bind(school.id).bind(&school.code).bind(&school.region).bind(&school.authority).bind(&payload_json)
        .bind(before.to_string()).bind(reason).bind(user.id).bind(now)
        .fetch_one(&mut *c).await)?;
        // The business lock: the primary key refuses a second open business (a transfer, another
        // change) for this student.
        let locked = on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO open_businesses (student_id, kind, ref_id, opened_at) VALUES ($1, $2, $3, $4)"
        ).bind(st.id).bind(kind.business()).bind(id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()));
        if let Err(e) = locked {
            let e = AppError::from(e);
            if e.is_unique_violation() {
                return Err(Error::new(
                    ErrorCode::TransferInProgress,
                    "该学生有正在办理的业务（如转学、其他学籍异动），须等该业务办结或撤销后才能申请",
                )
                .into());
            }
            return Err(e);
        }
        for (idx, (code, kind_s, party)) in [
            ("school", "school", school.code.as_str()),
            ("authority", "authority", school.authority.as_str()),
        ]
        .into_iter()
        .enumerate()
        {
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO change_steps (change_id, idx, code, party_kind, party_code) VALUES ($1, $2, $3, $4, $5)"
            ).bind(id).bind(idx as i64).bind(code).bind(kind_s).bind(party).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        for (f, ct) in &files {
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO change_evidence (change_id, filename, content_type, size, data, uploaded_at) VALUES ($1, $2, $3, $4, $5, $6)"
            ).bind(id).bind(&f.filename).bind(*ct).bind(f.bytes.len() as i64).bind(&f.bytes).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        let mut notices = notices;
        if kind == ChangeKind::Dropout {
            // The report duty begins when the school learns of it, not when the request ends.
            notices.push((
                OrgRef::Authority(school.authority.clone()),
                ChangeNotice::DropoutReport,
            ));
        }
        for (org, n) in notices {
            notify(
                &mut tx,
                &org,
                n.as_str(),
                None,
                &notice_text(n, kind, &st.name, &school.name, ""),
                now,
            )
            .await?;
        }
        let mut audit_payload = serde_json::to_value(&payload).unwrap_or_default();
        if let Some(n) = &payload.new_id_number {
            audit_payload["new_id_number"] = serde_json::json!(mask_document(n));
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "change.file",
                entity_type: "change_request",
                entity_id: id.to_string(),
                before: Some(before),
                after: Some(serde_json::json!({
                    "kind": kind.as_str(), "status": status.as_str(), "student_no": st.student_no,
                    "payload": audit_payload, "evidence": files.len(),
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.change(user, id).await
    }

    async fn load_change(&self, id: i64) -> AppResult<Option<(ChangeRow, Vec<StepRow>)>> {
        let sql = format!("{CHANGE_SELECT} WHERE cr.id = $1");
        let row: Option<ChangeRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
        let Some(row) = row else { return Ok(None) };
        let steps: Vec<StepRow> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT st.idx, st.code, st.party_code, st.decision, st.opinion, u.username AS actor_username, st.actor_name, \
             st.decided_at, COALESCE(sc.name, a.name) AS party_name FROM change_steps st \
             LEFT JOIN users u ON u.id = st.actor_user_id \
             LEFT JOIN schools sc ON st.party_kind = 'school' AND sc.code = st.party_code \
             LEFT JOIN authorities a ON st.party_kind = 'authority' AND a.region_code = st.party_code \
             WHERE st.change_id = $1 ORDER BY st.idx"
        ).bind(id).fetch_all(p).await)?;
        Ok(Some((row, steps)))
    }

    fn may_see_change(user: &CurrentUser, c: &ChangeRow) -> bool {
        match user.scope() {
            Scope::National => true,
            Scope::School { id, .. } => id == c.school_id,
            Scope::Region(r) => r.contains(&c.region_code) || r.as_str() == c.authority_region,
        }
    }

    /// One change request, if the caller may see it (outsiders: `not_found`).
    pub async fn change(&self, user: &CurrentUser, id: i64) -> AppResult<ChangeDetail> {
        let Some((c, steps)) = self.load_change(id).await? else {
            return Err(Error::not_found("该异动申请").into());
        };
        if !Self::may_see_change(user, &c) {
            return Err(Error::not_found("该异动申请").into());
        }
        let evidence: Vec<(i64, String, String, i64)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, filename, content_type, size FROM change_evidence WHERE change_id = $1 ORDER BY id"
        ).bind(id).fetch_all(p).await)?;
        let status = status_of(&c.status);
        let kind = kind_of(&c.kind);
        let current = status.step();
        let steps: Vec<ChangeStepOut> = steps
            .into_iter()
            .map(|s| {
                let idx = s.idx as usize;
                let state = if s.decision.is_some() {
                    "done"
                } else if current == Some(idx) {
                    "waiting"
                } else if current.is_some_and(|c| idx > c) {
                    "pending"
                } else {
                    "skipped"
                };
                ChangeStepOut {
                    party_label: if s.code == "school" {
                        "学校审核"
                    } else {
                        "学籍主管部门审批"
                    }
                    .into(),
                    step: s.code,
                    party: s.party_code,
                    party_name: s.party_name.unwrap_or_default(),
                    decision: s.decision,
                    opinion: s.opinion,
                    actor: s.actor_username,
                    actor_name: s.actor_name,
                    decided_at: s.decided_at,
                    state: state.into(),
                }
            })
            .collect();
        let mut payload: ChangePayload = serde_json::from_str(&c.payload).unwrap_or_default();
        let holds = matches!(user.scope(), Scope::School { id, .. } if id == c.school_id);
        if !holds {
            payload.new_id_number = payload.new_id_number.map(|n| mask_document(&n));
        }
        Ok(ChangeDetail {
            id: c.id,
            kind: c.kind.clone(),
            kind_label: kind.label_zh().into(),
            status: c.status.clone(),
            status_label: status.label_zh().into(),
            student_no: c.student_no,
            student_name: c.student_name,
            school: c.school_code,
            school_name: c.school_name,
            authority: c.authority_region,
            reason: c.reason,
            payload,
            before: serde_json::from_str(&c.before_json).unwrap_or_default(),
            current_step: current.map(|i| rules::STEP_CODES[i].to_string()),
            steps,
            evidence: evidence
                .into_iter()
                .map(|(id, filename, content_type, size)| EvidenceOut {
                    id,
                    filename,
                    content_type,
                    size,
                })
                .collect(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            applied_at: c.applied_at,
            withdraw_reason: c.withdraw_reason,
            version: c.version,
            notice: (kind == ChangeKind::Dropout).then(|| rules::DROPOUT_DUTY_ZH.to_string()),
        })
    }

    /// An evidence file of a request the caller may see: (filename, content type, bytes).
    pub async fn change_evidence(
        &self,
        user: &CurrentUser,
        id: i64,
        evidence_id: i64,
    ) -> AppResult<(String, String, Vec<u8>)> {
        self.change(user, id).await?;
        let row: Option<(String, String, Vec<u8>)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT filename, content_type, data FROM change_evidence WHERE id = $1 AND change_id = $2"
        ).bind(evidence_id).bind(id).fetch_optional(p).await)?;
        row.ok_or_else(|| Error::not_found("该材料").into())
    }

    /// The requests the caller may see, filtered; `todo` keeps those waiting for the caller's
    /// organisation (the school's reviewer, or the authority).
    pub async fn changes(
        &self,
        user: &CurrentUser,
        f: &ChangeFilter,
        page: Page,
    ) -> AppResult<Paged<ChangeSummary>> {
        let nonempty = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let status = match nonempty(&f.status) {
            Some(s) => Some(
                ChangeStatus::parse(&s)
                    .ok_or_else(|| Error::validation("status", "状态值无效"))?
                    .as_str(),
            ),
            None => None,
        };
        let kind = match nonempty(&f.kind) {
            Some(k) => Some(
                ChangeKind::parse(&k)
                    .ok_or_else(|| Error::validation("kind", "异动类型无效"))?
                    .as_str(),
            ),
            None => None,
        };
        let school_filter = match nonempty(&f.school) {
            Some(code) => Some(self.school(user, &code).await?.id),
            None => None,
        };
        let student = nonempty(&f.student).map(|s| s.to_uppercase());
        let (school_id, lo, hi, auth) = match user.scope() {
            Scope::School { id, .. } => (
                Some(id),
                "000000".to_string(),
                "999999".to_string(),
                String::new(),
            ),
            Scope::Region(r) => {
                let (lo, hi) = r.subtree_range();
                (None, lo, hi, r.as_str().to_string())
            }
            Scope::National => (None, "000000".into(), "999999".into(), String::new()),
        };
        let todo = f.todo.unwrap_or(false);
        let reviewer = user.role == Role::SchoolReviewer;
        let authority = user.role == Role::AuthorityAdmin;
        let where_ = "WHERE (($1 IS NOT NULL AND cr.school_id = $1) OR ($1 IS NULL AND ((cr.region_code >= $2 AND cr.region_code < $3) OR cr.authority_region = $4))) \
            AND ($5 IS NULL OR cr.status = $5) AND ($6 IS NULL OR cr.kind = $6) AND ($7 IS NULL OR cr.school_id = $7) \
            AND ($8 IS NULL OR cr.student_id = (SELECT student_id FROM student_numbers WHERE student_no = $8)) \
            AND ($9 = FALSE OR ($10 = TRUE AND cr.status = 'pending_school') \
                 OR ($11 = TRUE AND cr.status = 'pending_authority' AND cr.authority_region = $4))";
        let count_sql = format!("SELECT COUNT(*) FROM change_requests cr {where_}");
        let list_sql = format!("{CHANGE_SELECT} {where_} ORDER BY cr.id DESC LIMIT $12 OFFSET $13");
        macro_rules! binds {
            ($q:expr) => {
                $q.bind(school_id)
                    .bind(&lo)
                    .bind(&hi)
                    .bind(&auth)
                    .bind(status)
                    .bind(kind)
                    .bind(school_filter)
                    .bind(&student)
                    .bind(todo)
                    .bind(reviewer)
                    .bind(authority)
            };
        }
        let total: i64 = on_pool!(self.db.read(), p => binds!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))).fetch_one(p).await)?;
        let rows: Vec<ChangeRow> = on_pool!(self.db.read(), p => binds!(sqlx::query_as(sqlx::AssertSqlSafe(list_sql.as_str())))
            .bind(page.per_page).bind(page.offset()).fetch_all(p).await)?;
        let items = rows
            .into_iter()
            .map(|c| ChangeSummary {
                id: c.id,
                kind_label: kind_of(&c.kind).label_zh().into(),
                status_label: status_of(&c.status).label_zh().into(),
                kind: c.kind,
                status: c.status,
                student_no: c.student_no,
                student_name: c.student_name,
                school: c.school_code,
                school_name: c.school_name,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect();
        Ok(Paged { items, total })
    }

    /// 审核 / 审批: the school's reviewer, then the authority, approves or refuses (a refusal
    /// needs an opinion). The authority's approval applies the change.
    pub async fn review_change(
        &self,
        user: &CurrentUser,
        id: i64,
        approve: bool,
        opinion: &str,
    ) -> AppResult<ChangeDetail> {
        let opinion = opinion.trim();
        if opinion.chars().count() > 500 {
            return Err(Error::validation("opinion", "审核意见不超过500字").into());
        }
        self.act_change(
            user,
            id,
            ChangeAction::Review {
                approve,
                opinion: opinion.to_string(),
            },
        )
        .await
    }

    /// 撤销 by the filing school's administrator while the request is pending.
    pub async fn withdraw_change(
        &self,
        user: &CurrentUser,
        id: i64,
        reason: &str,
    ) -> AppResult<ChangeDetail> {
        let reason = reason.trim();
        if reason.chars().count() > 500 {
            return Err(Error::validation("reason", "撤销原因不超过500字").into());
        }
        self.act_change(
            user,
            id,
            ChangeAction::Withdraw {
                reason: reason.to_string(),
            },
        )
        .await
    }

    async fn act_change(
        &self,
        user: &CurrentUser,
        id: i64,
        action: ChangeAction,
    ) -> AppResult<ChangeDetail> {
        let Some((c, _steps)) = self.load_change(id).await? else {
            return Err(Error::not_found("该异动申请").into());
        };
        if !Self::may_see_change(user, &c) {
            return Err(Error::not_found("该异动申请").into());
        }
        let kind = kind_of(&c.kind);
        let state = ChangeState {
            status: status_of(&c.status),
            filed_by: c.filed_by,
            school: c.school_code.clone(),
            authority: c.authority_region.clone(),
        };
        let tr = rules::decide(&state, &user.actor(), &action)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let updated = on_tx!(&mut tx, conn => sqlx::query(
            "UPDATE change_requests SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND version = $4"
        ).bind(tr.to.as_str()).bind(now).bind(id).bind(c.version).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
        if updated != 1 {
            return Err(Error::conflict().into());
        }
        let mut opinion_text = String::new();
        match &action {
            ChangeAction::Review { approve, opinion } => {
                opinion_text = opinion.clone();
                let idx = tr.decided_step.unwrap_or(0) as i64;
                let n = on_tx!(&mut tx, conn => sqlx::query(
                    "UPDATE change_steps SET decision = $1, opinion = $2, actor_user_id = $3, actor_name = $4, decided_at = $5 \
                     WHERE change_id = $6 AND idx = $7 AND decision IS NULL"
                ).bind(if *approve { "approve" } else { "reject" }).bind(Some(opinion.as_str()).filter(|o| !o.is_empty()))
                .bind(user.id).bind(&user.display_name).bind(now).bind(id).bind(idx)
                .execute(&mut *conn).await.map(|r| r.rows_affected()))?;
                if n != 1 {
                    return Err(Error::conflict().into());
                }
            }
            ChangeAction::Withdraw { reason } => {
                on_tx!(&mut tx, conn => sqlx::query("UPDATE change_requests SET withdraw_reason = $1 WHERE id = $2")
                    .bind(reason).bind(id).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
            }
        }
        let mut applied = serde_json::Value::Null;
        let mut extra_notices: Vec<(OrgRef, ChangeNotice, String)> = vec![];
        if tr.applies {
            applied = self.apply_change(&mut tx, &c, now).await?;
            on_tx!(&mut tx, conn => sqlx::query("UPDATE change_requests SET applied_at = $1 WHERE id = $2")
                .bind(now).bind(id).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
            if kind == ChangeKind::Dropout {
                extra_notices.push((
                    OrgRef::Authority(c.authority_region.clone()),
                    ChangeNotice::DropoutReport,
                    notice_text(
                        ChangeNotice::DropoutReport,
                        kind,
                        &c.student_name,
                        &c.school_name,
                        "",
                    ),
                ));
            }
            if let Some(to) = applied.get("to_school").and_then(|v| v.as_str()) {
                extra_notices.push((
                    OrgRef::School(to.to_string()),
                    ChangeNotice::Applied,
                    format!("学籍异动：{}学生{}经学籍主管部门批准转入贵校（转入特教/工读），学籍已转入。", c.school_name, c.student_name),
                ));
            }
        }
        if tr.unlocks {
            on_tx!(&mut tx, conn => sqlx::query(
                "DELETE FROM open_businesses WHERE student_id = $1 AND kind = $2 AND ref_id = $3"
            ).bind(c.student_id).bind(kind.business()).bind(id).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
        }
        for (org, n) in &tr.notify {
            let text = notice_text(*n, kind, &c.student_name, &c.school_name, &opinion_text);
            notify(&mut tx, org, n.as_str(), None, &text, now).await?;
        }
        for (org, n, text) in &extra_notices {
            notify(&mut tx, org, n.as_str(), None, text, now).await?;
        }
        let action_name = match (&action, tr.to) {
            (ChangeAction::Withdraw { .. }, _) => "change.withdraw",
            (_, ChangeStatus::Refused) => "change.refuse",
            (_, ChangeStatus::Applied) => "change.apply",
            _ => "change.approve",
        };
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: action_name,
                entity_type: "change_request",
                entity_id: id.to_string(),
                before: Some(serde_json::json!({ "status": c.status, "version": c.version })),
                after: Some(serde_json::json!({
                    "status": tr.to.as_str(), "step": tr.decided_step, "opinion": opinion_text,
                    "kind": kind.as_str(), "student_no": c.student_no, "applied": applied,
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.change(user, id).await
    }

    /// Applies an approved request to the student inside the approving transaction. The rules
    /// are checked again against the record as it is now; answers the audit's picture of the
    /// effect.
    async fn apply_change(
        &self,
        tx: &mut Tx,
        c: &ChangeRow,
        now: DateTime<Utc>,
    ) -> AppResult<serde_json::Value> {
        let kind = kind_of(&c.kind);
        let payload: ChangePayload = serde_json::from_str(&c.payload).unwrap_or_default();
        let sql = format!("{STUDENT_REC} WHERE id = $1");
        let st: StudentRec = on_tx!(tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(c.student_id).fetch_one(&mut *conn).await)?;
        if st.school_id != Some(c.school_id) {
            return Err(Error::new(
                ErrorCode::Conflict,
                "该学生已不在提交申请的学校，请撤销该申请",
            )
            .into());
        }
        let grades: String = on_tx!(tx, conn => sqlx::query_scalar("SELECT grades FROM schools WHERE id = $1")
            .bind(c.school_id).fetch_one(&mut *conn).await)?;
        let status = StudentStatus::parse(&st.status)
            .ok_or_else(|| Error::new(ErrorCode::Conflict, "该学生的学籍状态已变化"))?;
        let current_grade = st.grade.as_deref().and_then(|g| Grade::parse(g).ok());
        let facts = StudentFacts {
            status,
            grade: current_grade,
            school_grades: grades
                .split(',')
                .filter_map(|g| Grade::parse(g).ok())
                .collect(),
        };
        let mut params = KindParams {
            from: payload.from_date,
            until: payload.until_date,
            grade: payload
                .to_grade
                .as_deref()
                .and_then(|g| Grade::parse(g).ok()),
            ..Default::default()
        };
        let mut target: Option<(i64, String, String)> = None;
        if kind == ChangeKind::SpecialEducation {
            let code = payload.to_school.clone().unwrap_or_default();
            let row: (i64, String, String, String) = on_tx!(tx, conn => sqlx::query_as(
                "SELECT id, region_code, school_type, grades FROM schools WHERE code = $1"
            ).bind(&code).fetch_one(&mut *conn).await)?;
            params.target_school_type = Some(row.2);
            params.target_school_grades = row
                .3
                .split(',')
                .filter_map(|g| Grade::parse(g).ok())
                .collect();
            params.same_province =
                row.1.get(..2) == st.region_code.as_deref().and_then(|r| r.get(..2));
            target = Some((row.0, code, row.1));
        }
        let effect: Effect = rules::check_kind(kind, &facts, &params)?;
        if kind == ChangeKind::KeyChange {
            return self.apply_key_change(tx, &st, &payload, now).await;
        }
        let new_grade = effect.grade.map(|g| g.code()).or(st.grade.clone());
        // The class afterwards: the one asked for; for 休学 and a 复学 into the same grade, the
        // seat kept; otherwise none yet (the school assigns one later).
        let new_class = if effect.ends_enrollment {
            None
        } else if payload.to_class_id.is_some() {
            payload.to_class_id
        } else if new_grade == st.grade && status != StudentStatus::Abroad {
            st.class_id
        } else {
            None
        };
        if let Some(class_id) = new_class
            && Some(class_id) != st.class_id
        {
            let (capacity, enrolled): (i64, i64) = on_tx!(tx, conn => sqlx::query_as(
                "SELECT c.capacity, (SELECT COUNT(*) FROM students s WHERE s.class_id = c.id) FROM classes c WHERE c.id = $1"
            ).bind(class_id).fetch_one(&mut *conn).await)?;
            if enrolled >= capacity {
                return Err(Error::new(
                    ErrorCode::ClassFull,
                    format!("所选班级已满（{enrolled}/{capacity}人），请学校调整后再审批"),
                )
                .into());
            }
        }
        let (school_id, region) = match &target {
            Some((id, _, region)) => (*id, Some(region.clone())),
            None => (c.school_id, st.region_code.clone()),
        };
        let n = on_tx!(tx, conn => sqlx::query(
            "UPDATE students SET status = $1, grade = $2, class_id = $3, school_id = $4, region_code = $5, \
             version = version + 1, updated_at = $6 WHERE id = $7 AND version = $8"
        ).bind(effect.status.as_str()).bind(&new_grade).bind(new_class).bind(school_id).bind(&region).bind(now)
        .bind(st.id).bind(st.version).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(Error::conflict().into());
        }
        // Enrollment history: the open period ends; unless the student leaves the roll, a new one
        // begins, naming the change that opened it.
        let closing_status = if effect.ends_enrollment {
            Some(effect.status.as_str())
        } else if effect.moves_school {
            Some("transferred_out")
        } else {
            None
        };
        on_tx!(tx, conn => sqlx::query(
            "UPDATE enrollments SET ended_at = $1, change_id = $2, status = COALESCE($3, status) \
             WHERE student_id = $4 AND ended_at IS NULL"
        ).bind(now).bind(c.id).bind(closing_status).bind(st.id).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
        if !effect.ends_enrollment {
            let period_status = if effect.status == StudentStatus::Suspended {
                "suspended"
            } else {
                "active"
            };
            on_tx!(tx, conn => sqlx::query(
                "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at, change_id, entry_kind) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ).bind(st.id).bind(school_id).bind(&new_grade).bind(new_class).bind(period_status).bind(now)
            .bind(c.id).bind(kind.as_str()).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
        }
        Ok(serde_json::json!({
            "status": effect.status.as_str(), "grade": new_grade, "class_id": new_class,
            "to_school": target.map(|t| t.1),
        }))
    }

    /// 关键数据变更 applied: the duplicate check once more, the record's key data, and the
    /// student number that follows (see the module's documentation).
    async fn apply_key_change(
        &self,
        tx: &mut Tx,
        st: &StudentRec,
        p: &ChangePayload,
        now: DateTime<Utc>,
    ) -> AppResult<serde_json::Value> {
        let name = p.new_name.clone().unwrap_or_else(|| st.name.clone());
        let id_type = p.new_id_type.clone().unwrap_or_else(|| st.id_type.clone());
        let id_number = p
            .new_id_number
            .clone()
            .unwrap_or_else(|| st.id_number.clone());
        let gender = match p.new_gender.as_deref().and_then(Gender::parse) {
            Some(g) => g.code().to_string(),
            None => st.gender.clone(),
        };
        let birth = p.new_birth_date.unwrap_or(st.birth_date);
        let number_changed = id_type != st.id_type || id_number != st.id_number;
        let mut student_no = st.student_no.clone();
        let mut identity_status = st.identity_status.clone();
        if number_changed {
            let holder: Option<i64> = on_tx!(tx, conn => sqlx::query_scalar(
                "SELECT id FROM students WHERE id_type = $1 AND id_number = $2 AND id <> $3"
            ).bind(&id_type).bind(&id_number).bind(st.id).fetch_optional(&mut *conn).await)?;
            if holder.is_some() {
                return Err(duplicate().into());
            }
            let formal_now = st.student_no.starts_with('G');
            match (formal_now, id_type == RESIDENT_ID) {
                (true, true) => {
                    let id = IdNumber::parse(&id_number)?;
                    let new_no = StudentNo::formal(&id).as_str().to_string();
                    let taken: i64 = on_tx!(tx, conn => sqlx::query_scalar(
                        "SELECT COUNT(*) FROM student_numbers WHERE student_no = $1 AND student_id <> $2"
                    ).bind(&new_no).bind(st.id).fetch_one(&mut *conn).await)?;
                    if taken > 0 {
                        return Err(duplicate().into());
                    }
                    on_tx!(tx, conn => {
                        sqlx::query("UPDATE student_numbers SET replaced_at = $1 WHERE student_id = $2 AND replaced_at IS NULL")
                            .bind(now).bind(st.id).execute(&mut *conn).await?;
                        sqlx::query(
                            "INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) VALUES ($1, $2, 'formal', $3) \
                             ON CONFLICT (student_no) DO UPDATE SET replaced_at = NULL, assigned_at = $3"
                        ).bind(&new_no).bind(st.id).bind(now).execute(&mut *conn).await.map(|r| r.rows_affected())?
                    });
                    student_no = new_no;
                }
                // A formal number cannot be derived from another document: it stays.
                (true, false) => {}
                (false, true) => identity_status = "pending".into(),
                (false, false) => identity_status = "not_applicable".into(),
            }
        } else if name != st.name && !st.student_no.starts_with('G') && id_type == RESIDENT_ID {
            // 公安比对 compares the name too: a corrected name is checked again.
            identity_status = "pending".into();
        }
        let updated = on_tx!(tx, conn => sqlx::query(
            "UPDATE students SET name = $1, id_type = $2, id_number = $3, gender = $4, birth_date = $5, student_no = $6, \
             identity_status = $7, version = version + 1, updated_at = $8 WHERE id = $9 AND version = $10"
        ).bind(&name).bind(&id_type).bind(&id_number).bind(&gender).bind(birth).bind(&student_no)
        .bind(&identity_status).bind(now).bind(st.id).bind(st.version).execute(&mut *conn).await.map(|r| r.rows_affected()));
        match updated {
            Ok(1) => {}
            Ok(_) => return Err(Error::conflict().into()),
            Err(e) => {
                let e = AppError::from(e);
                return Err(if e.is_unique_violation() {
                    duplicate().into()
                } else {
                    e
                });
            }
        }
        Ok(serde_json::json!({
            "name": name, "gender": gender_word(&gender), "birth_date": birth, "id_type": id_type,
            "id_number_masked": mask_document(&id_number), "student_no": student_no,
            "previous_student_no": st.student_no, "identity_status": identity_status,
        }))
    }

    /// Direct edit of non-key fields by the school's administrator (民族; the class within the
    /// same grade). Key data is refused here: it goes through a 关键数据变更 request.
    pub async fn update_student(
        &self,
        user: &CurrentUser,
        student_no: &str,
        patch: &StudentPatch,
    ) -> AppResult<StudentDetail> {
        for (field, given) in [
            ("name", patch.name.is_some()),
            ("id_type", patch.id_type.is_some()),
            ("id_number", patch.id_number.is_some()),
            ("gender", patch.gender.is_some()),
            ("birth_date", patch.birth_date.is_some()),
        ] {
            if given {
                return Err(Error::validation(
                    field,
                    "姓名、身份证件、性别、出生日期属于关键数据，须提交关键数据变更申请并经审核后变更",
                )
                .into());
            }
        }
        let st = self.own_student(user, student_no, "学籍信息修改").await?;
        if patch.version.is_some_and(|v| v != st.version) {
            return Err(Error::conflict().into());
        }
        let refs = Refs::load(self).await?;
        let ethnicity = match patch.ethnicity.as_deref() {
            Some(e) => refs
                .ethnicity(e)
                .map_err(|e| at(e.into_error(), "ethnicity"))?,
            None => st.ethnicity.clone(),
        };
        let class_id = match patch.class_id {
            Some(cid) if Some(cid) != st.class_id => {
                if !matches!(st.status.as_str(), "enrolled" | "suspended") {
                    return Err(Error::validation("class_id", "该学生不在籍，不能调整班级").into());
                }
                let busy: Option<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
                    "SELECT kind FROM open_businesses WHERE student_id = $1").bind(st.id).fetch_optional(p).await)?;
                if busy.is_some() {
                    return Err(Error::new(
                        ErrorCode::TransferInProgress,
                        "该学生有在办业务，办结后才能调整班级",
                    )
                    .at("class_id")
                    .into());
                }
                let school_id = st.school_id.unwrap_or_default();
                let Some((grade, capacity, enrolled)) = self.class_info(cid, school_id).await?
                else {
                    return Err(Error::validation("class_id", "所选班级不是本校的班级").into());
                };
                if Some(&grade) != st.grade.as_ref() {
                    return Err(Error::validation(
                        "class_id",
                        "只能调整到同一年级的班级；年级变化请办理留级或跳级",
                    )
                    .into());
                }
                if enrolled >= capacity {
                    return Err(Error::new(
                        ErrorCode::ClassFull,
                        format!("所选班级已满（{enrolled}/{capacity}人）"),
                    )
                    .at("class_id")
                    .into());
                }
                Some(cid)
            }
            _ => st.class_id,
        };
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE students SET ethnicity = $1, class_id = $2, version = version + 1, updated_at = $3 WHERE id = $4 AND version = $5"
        ).bind(&ethnicity).bind(class_id).bind(now).bind(st.id).bind(st.version).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(Error::conflict().into());
        }
        if class_id != st.class_id {
            on_tx!(&mut tx, c => sqlx::query("UPDATE enrollments SET class_id = $1 WHERE student_id = $2 AND ended_at IS NULL")
                .bind(class_id).bind(st.id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "student.update",
                entity_type: "student",
                entity_id: st.student_no.clone(),
                before: Some(
                    serde_json::json!({ "ethnicity": st.ethnicity, "class_id": st.class_id }),
                ),
                after: Some(serde_json::json!({ "ethnicity": ethnicity, "class_id": class_id })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.student(user, &st.student_no).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("JVBERi0=").unwrap(), b"%PDF-");
        assert_eq!(decode_base64("JVBERi0").unwrap(), b"%PDF-");
        assert_eq!(decode_base64("aGVs\nbG8=").unwrap(), b"hello");
        assert!(decode_base64("not base64!").is_none());
    }
}
