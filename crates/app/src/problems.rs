//! 问题学籍处理: the problem records that the identity check (公安比对) and 查重 leave, and what a
//! school does about them.
//!
//! A school's administrator takes one action on an open problem record, with a written
//! explanation and optional evidence files (佐证材料): 佐证 `confirm` (the data is right), 变更
//! `correct` (a corrected name and/or identity document) or 删除 `delete` (the record was created
//! in error). Nothing changes until the school's supervising authority approves; a refusal needs
//! an opinion and reopens the record. While an action waits, the student is locked by an open
//! business (`open_businesses`, kind `problem_record`), so no transfer or batch change runs across
//! it. Every step is one transaction with its audit row and a notification.
//!
//! What an approval does:
//! - `confirm`: a failed identity check counts as passed on the evidence — the formal number
//!   `G` + identity number is issued as the batch check does (the L number kept in the history)
//!   and an `identity_checks` row says `confirmed_by_evidence`; a (suspected) duplicate is
//!   declared a different person. The record is resolved `confirmed`.
//! - `correct`: the name and/or document are replaced (validated as at registration, 查重 again
//!   at request and at approval; a resident identity number must agree with the recorded gender
//!   and birth date — changing those is a key-data change). A resident identity number goes back
//!   to `pending` for the next identity check. A changed name that now looks like another record
//!   opens a new 疑似重复 record. Resolved `corrected`.
//! - `delete`: the student row is kept — its history, numbers, audit rows and problem records
//!   stay — but its status becomes `deleted` (已删除), its enrollment ends with status `deleted`
//!   and it leaves every list; its numbers are retired (`replaced_at`), never reissued. The
//!   identity document is released for a correct registration by suffixing the stored number with
//!   `#D` + the record's id; the number as it was is kept in the action row (`old_id_number`).
//!   A deleted record still waiting for the identity check leaves its queue (`not_applicable`).
//!   The student's other open problem records are resolved `deleted`, and other records' 疑似重复
//!   problems pointing at it `related_deleted`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{Gender, IdNumber, StudentNo, mask_document};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditEvent};
use crate::auth::{CurrentUser, Scope};
use crate::db::Tx;
use crate::error::{AppError, AppResult};
use crate::notifications::notify;
use crate::paging::{Page, Paged};
use crate::registration::{RESIDENT_ID, Refs, check_document, check_name, cross_check};
use crate::transfers::{
    Evidence, EvidenceOut, MAX_EVIDENCE_BYTES, MAX_EVIDENCE_FILES, evidence_type,
};
use crate::{App, on_pool, on_tx};

/// The kinds of problem record.
pub const KINDS: [&str; 4] = [
    "id_not_found",
    "name_mismatch",
    "duplicate_identity",
    "suspected_duplicate",
];

pub fn kind_label_zh(kind: &str) -> &'static str {
    match kind {
        "id_not_found" => "身份证号码不存在",
        "name_mismatch" => "姓名与身份证号码不匹配",
        "duplicate_identity" => "身份证件重复",
        "suspected_duplicate" => "疑似重复",
        _ => "其他",
    }
}

pub fn status_label_zh(status: &str) -> &'static str {
    match status {
        "open" => "待处理",
        "pending" => "待主管部门审核",
        "resolved" => "已处理",
        _ => "其他",
    }
}

pub fn action_label_zh(action: &str) -> &'static str {
    match action {
        "confirm" => "佐证",
        "correct" => "变更",
        "delete" => "删除",
        _ => "其他",
    }
}

pub fn action_status_label_zh(status: &str) -> &'static str {
    match status {
        "pending" => "待审核",
        "approved" => "已同意",
        "refused" => "不同意",
        _ => "其他",
    }
}

pub fn resolution_label_zh(resolution: &str) -> &'static str {
    match resolution {
        "confirmed" => "佐证通过",
        "corrected" => "已变更",
        "deleted" => "学籍已删除",
        "related_deleted" => "另一条学籍已删除",
        _ => "其他",
    }
}

/// Filters of the problem list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ProblemFilter {
    /// `id_not_found`, `name_mismatch`, `duplicate_identity` or `suspected_duplicate`.
    pub kind: Option<String>,
    /// `open` (待处理), `pending` (待主管部门审核) or `resolved` (已处理).
    pub status: Option<String>,
    /// 学校标识码 (authorities).
    pub school: Option<String>,
    /// Only those whose pending action waits for the caller's authority.
    pub todo: Option<bool>,
    /// Name prefix or exact student number.
    pub q: Option<String>,
}

/// One row of the problem list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ProblemSummary {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub detail: String,
    /// The student's current number.
    pub student_no: String,
    pub student_name: String,
    /// `410105********123X`.
    pub id_number_masked: String,
    /// `enrolled`, …, or `deleted` after an approved 删除.
    pub student_status: String,
    pub school: String,
    pub school_name: String,
    /// Region code of the supervising authority (approves the actions).
    pub authority: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// `confirmed`, `corrected`, `deleted` or `related_deleted`.
    pub resolution: Option<String>,
    /// The action waiting for approval (`confirm`, `correct`, `delete`), if any.
    pub pending_action: Option<String>,
    pub version: i64,
}

/// One action taken on a problem record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProblemActionOut {
    pub id: i64,
    /// `confirm` (佐证), `correct` (变更) or `delete` (删除).
    pub action: String,
    /// `pending`, `approved` or `refused`.
    pub status: String,
    /// The school's explanation.
    pub reason: String,
    pub new_name: Option<String>,
    pub new_id_type: Option<String>,
    pub new_id_number_masked: Option<String>,
    pub old_name: String,
    pub old_id_number_masked: String,
    /// Username of the school administrator.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// Username of the authority's decider.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub opinion: Option<String>,
    pub evidence: Vec<EvidenceOut>,
}

/// A problem record with its actions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProblemDetail {
    #[serde(flatten)]
    pub summary: ProblemSummary,
    /// The other record of a (suspected) duplicate, if the caller may see it.
    pub related_student_no: Option<String>,
    /// Oldest first.
    pub actions: Vec<ProblemActionOut>,
}

/// What a school's administrator asks for.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemActionRequest {
    /// `confirm` (佐证), `correct` (变更) or `delete` (删除).
    pub action: String,
    /// The explanation (what the evidence shows, what was wrong); required.
    pub reason: String,
    /// `correct`: the corrected name.
    #[serde(default)]
    pub name: Option<String>,
    /// `correct`: the corrected document type (default: unchanged).
    #[serde(default)]
    pub id_type: Option<String>,
    /// `correct`: the corrected document number.
    #[serde(default)]
    pub id_number: Option<String>,
    /// The record's `version` as the caller saw it (optional): a changed record is `conflict`.
    #[serde(default)]
    pub version: Option<i64>,
}

/// The authority's decision on the pending action.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemDecision {
    /// `approve` (同意) or `refuse` (不同意).
    pub decision: String,
    /// Required to refuse.
    #[serde(default)]
    pub opinion: String,
}

const SUMMARY_SELECT: &str = "SELECT pr.id, pr.kind, pr.status, pr.detail, st.student_no, st.name AS student_name, \
    st.id_number AS id_number_masked, st.status AS student_status, sc.code AS school, sc.name AS school_name, \
    sc.authority_region AS authority, pr.created_at, pr.resolved_at, pr.resolution, pa.action AS pending_action, \
    pr.version \
    FROM problem_records pr JOIN students st ON st.id = pr.student_id \
    JOIN schools sc ON sc.id = COALESCE(st.school_id, \
        (SELECT e.school_id FROM enrollments e WHERE e.student_id = st.id ORDER BY e.id DESC LIMIT 1)) \
    LEFT JOIN problem_actions pa ON pa.problem_id = pr.id AND pa.status = 'pending'";

/// What an action needs to know about its problem record.
#[derive(sqlx::FromRow)]
struct Subject {
    problem_id: i64,
    kind: String,
    status: String,
    version: i64,
    related_student_id: Option<i64>,
    student_id: i64,
    student_no: String,
    name: String,
    gender: String,
    birth_date: chrono::NaiveDate,
    id_type: String,
    id_number: String,
    student_school_id: Option<i64>,
    identity_status: String,
    school_id: i64,
    school_code: String,
    school_region: String,
    authority_region: String,
}

/// The action waiting for the authority.
#[derive(sqlx::FromRow)]
struct PendingAction {
    id: i64,
    action: String,
    new_name: Option<String>,
    new_id_type: Option<String>,
    new_id_number: Option<String>,
    authority_region: String,
}

#[derive(sqlx::FromRow)]
struct ActionRow {
    id: i64,
    action: String,
    status: String,
    reason: String,
    new_name: Option<String>,
    new_id_type: Option<String>,
    new_id_number: Option<String>,
    old_name: String,
    old_id_number: String,
    requested_by: String,
    requested_at: DateTime<Utc>,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    opinion: Option<String>,
}

fn refuse_empty(s: &str, field: &'static str, what: &str) -> Result<String, Error> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Error::new(ErrorCode::ReasonRequired, format!("请填写{what}")).at(field));
    }
    if t.chars().count() > 500 {
        return Err(Error::validation(field, format!("{what}不超过500字")));
    }
    Ok(t.to_string())
}

/// A validated correction: the new name and document.
struct Correction {
    name: String,
    id_type: String,
    id_number: String,
}

impl App {
    async fn subject(&self, problem_id: i64) -> AppResult<Option<Subject>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT pr.id AS problem_id, pr.kind, pr.status, pr.version, pr.related_student_id, st.id AS student_id, \
             st.student_no, st.name, st.gender, st.birth_date, st.id_type, st.id_number, st.school_id AS student_school_id, \
             st.identity_status, sc.id AS school_id, sc.code AS school_code, sc.region_code AS school_region, \
             sc.authority_region \
             FROM problem_records pr JOIN students st ON st.id = pr.student_id \
             JOIN schools sc ON sc.id = COALESCE(st.school_id, \
                (SELECT e.school_id FROM enrollments e WHERE e.student_id = st.id ORDER BY e.id DESC LIMIT 1)) \
             WHERE pr.id = $1"
        ).bind(problem_id).fetch_optional(p).await)?)
    }

    /// The problem record if the caller may see it (its school is in the caller's scope).
    async fn visible_subject(&self, user: &CurrentUser, problem_id: i64) -> AppResult<Subject> {
        match self.subject(problem_id).await? {
            Some(s) if user.scope().covers_school(s.school_id, &s.school_region) => Ok(s),
            _ => Err(Error::not_found("该问题学籍").into()),
        }
    }

    /// Problem records the caller may see (a school: its own; an authority: its region's;
    /// the national administrator: all), newest first.
    pub async fn problems(
        &self,
        user: &CurrentUser,
        filter: &ProblemFilter,
        page: Page,
    ) -> AppResult<Paged<ProblemSummary>> {
        let scope = user.scope();
        let Some((lo, hi)) = scope.region_range(None) else {
            return Ok(Paged {
                items: vec![],
                total: 0,
            });
        };
        let mut school_id = match &scope {
            Scope::School { id, .. } => Some(*id),
            _ => None,
        };
        if let Some(code) = filter.school.as_deref().filter(|s| !s.trim().is_empty()) {
            let s = self.school(user, code).await?;
            school_id = Some(s.id);
        }
        let kind = filter
            .kind
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        if let Some(k) = kind
            && !KINDS.contains(&k)
        {
            return Err(Error::validation(
                "kind",
                "问题类型应为 id_not_found、name_mismatch、duplicate_identity 或 suspected_duplicate",
            )
            .into());
        }
        let status = filter
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        if let Some(s) = status
            && !["open", "pending", "resolved"].contains(&s)
        {
            return Err(Error::validation("status", "状态应为 open、pending 或 resolved").into());
        }
        let todo_authority = match (&user.org, filter.todo) {
            (OrgRef::Authority(r), Some(true)) => Some(r.clone()),
            (_, Some(true)) => Some(String::new()),
            _ => None,
        };
        let q = filter
            .q
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_uppercase);
        let name_prefix = q.as_ref().map(|q| format!("{q}%"));
        let where_ = "WHERE sc.region_code >= $1 AND sc.region_code < $2 AND ($3 IS NULL OR sc.id = $3) \
            AND ($4 IS NULL OR pr.kind = $4) AND ($5 IS NULL OR pr.status = $5) \
            AND ($6 IS NULL OR pa.authority_region = $6) \
            AND ($7 IS NULL OR st.student_no = $7 OR st.name LIKE $8)";
        let count_sql = format!("SELECT COUNT(*) FROM ({SUMMARY_SELECT} {where_}) counted");
        let list_sql = format!("{SUMMARY_SELECT} {where_} ORDER BY pr.id DESC LIMIT $9 OFFSET $10");
        let total: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))
            .bind(&lo).bind(&hi).bind(school_id).bind(kind).bind(status).bind(&todo_authority)
            .bind(&q).bind(&name_prefix).fetch_one(p).await)?;
        let mut items: Vec<ProblemSummary> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(list_sql.as_str()))
            .bind(&lo).bind(&hi).bind(school_id).bind(kind).bind(status).bind(&todo_authority)
            .bind(&q).bind(&name_prefix).bind(page.per_page).bind(page.offset()).fetch_all(p).await)?;
        for i in &mut items {
            i.id_number_masked = mask_document(&i.id_number_masked);
        }
        Ok(Paged { items, total })
    }

    /// One problem record with its actions, if the caller may see it.
    pub async fn problem(&self, user: &CurrentUser, id: i64) -> AppResult<ProblemDetail> {
        let subject = self.visible_subject(user, id).await?;
        let sql = format!("{SUMMARY_SELECT} WHERE pr.id = $1");
        let mut summary: ProblemSummary = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id).fetch_one(p).await)?;
        summary.id_number_masked = mask_document(&summary.id_number_masked);
        let related_student_no = match subject.related_student_id {
            Some(rid) => {
                let row: Option<(String, Option<i64>, Option<String>)> = on_pool!(self.db.read(), p => sqlx::query_as(
                    "SELECT st.student_no, st.school_id, sc.region_code FROM students st \
                     LEFT JOIN schools sc ON sc.id = st.school_id WHERE st.id = $1"
                ).bind(rid).fetch_optional(p).await)?;
                row.filter(|(_, sid, region)| match (sid, region) {
                    (Some(sid), Some(region)) => user.scope().covers_school(*sid, region),
                    _ => false,
                })
                .map(|(no, _, _)| no)
            }
            None => None,
        };
        let actions = self.problem_actions_of("pa.problem_id = $1", id).await?;
        Ok(ProblemDetail {
            summary,
            related_student_no,
            actions,
        })
    }

    /// The actions of one problem record (`pa.problem_id = $1`) or of one student
    /// (`pa.student_id = $1`), oldest first.
    pub(crate) async fn problem_actions_of(
        &self,
        condition: &'static str,
        id: i64,
    ) -> AppResult<Vec<ProblemActionOut>> {
        let sql = format!(
            "SELECT pa.id, pa.action, pa.status, pa.reason, pa.new_name, pa.new_id_type, pa.new_id_number, \
             pa.old_name, pa.old_id_number, ru.username AS requested_by, pa.requested_at, \
             du.username AS decided_by, pa.decided_at, pa.opinion \
             FROM problem_actions pa JOIN users ru ON ru.id = pa.requested_by \
             LEFT JOIN users du ON du.id = pa.decided_by WHERE {condition} ORDER BY pa.id"
        );
        let rows: Vec<ActionRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id).fetch_all(p).await)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let evidence: Vec<(i64, String, String, i64)> = on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT id, filename, content_type, size FROM problem_evidence WHERE action_id = $1 ORDER BY id"
            ).bind(r.id).fetch_all(p).await)?;
            out.push(ProblemActionOut {
                id: r.id,
                action: r.action,
                status: r.status,
                reason: r.reason,
                new_name: r.new_name,
                new_id_type: r.new_id_type,
                new_id_number_masked: r.new_id_number.as_deref().map(mask_document),
                old_name: r.old_name,
                old_id_number_masked: mask_document(&r.old_id_number),
                requested_by: r.requested_by,
                requested_at: r.requested_at,
                decided_by: r.decided_by,
                decided_at: r.decided_at,
                opinion: r.opinion,
                evidence: evidence
                    .into_iter()
                    .map(|(id, filename, content_type, size)| EvidenceOut {
                        id,
                        filename,
                        content_type,
                        size,
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// An evidence file of a problem record the caller may see: (filename, content type, bytes).
    pub async fn problem_evidence(
        &self,
        user: &CurrentUser,
        problem_id: i64,
        evidence_id: i64,
    ) -> AppResult<(String, String, Vec<u8>)> {
        self.visible_subject(user, problem_id).await?;
        let row: Option<(String, String, Vec<u8>)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT e.filename, e.content_type, e.data FROM problem_evidence e \
             JOIN problem_actions pa ON pa.id = e.action_id WHERE e.id = $1 AND pa.problem_id = $2"
        ).bind(evidence_id).bind(problem_id).fetch_optional(p).await)?;
        row.ok_or_else(|| Error::not_found("该材料").into())
    }

    /// Checks a correction against the record: what changes, validated as at registration, and
    /// the document not held by anyone else.
    async fn validate_correction(
        &self,
        s: &Subject,
        req: &ProblemActionRequest,
    ) -> AppResult<Correction> {
        let refs = Refs::load(self).await?;
        let name = match req.name.as_deref().filter(|n| !n.trim().is_empty()) {
            Some(n) => check_name(n).map_err(|e| AppError::from(e.into_error()))?,
            None => s.name.clone(),
        };
        let id_type = match req.id_type.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(t) => refs
                .id_type(t)
                .map_err(|e| AppError::from(e.into_error()))?,
            None => s.id_type.clone(),
        };
        let (id_number, id) = match req.id_number.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(n) => {
                check_document(&refs, &id_type, n).map_err(|e| AppError::from(e.into_error()))?
            }
            None => check_document(&refs, &id_type, &s.id_number)
                .map_err(|e| AppError::from(e.into_error()))?,
        };
        if name == s.name && id_type == s.id_type && id_number == s.id_number {
            return Err(Error::validation(
                "name",
                "变更须修改姓名或证件号码中的至少一项；如信息无误，请选择“佐证”",
            )
            .into());
        }
        let holder: Option<i64> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT id FROM students WHERE id_type = $1 AND id_number = $2 AND id <> $3"
        ).bind(&id_type).bind(&id_number).bind(s.student_id).fetch_optional(p).await)?;
        if holder.is_some() {
            return Err(Error::new(
                ErrorCode::DuplicatePerson,
                "该证件号码已有学籍（一人一籍）：请核对证件号码",
            )
            .at("id_number")
            .into());
        }
        let gender = Gender::parse(&s.gender);
        if let Some(e) = cross_check(
            id.as_ref(),
            gender,
            Some(s.birth_date),
            None,
            self.clock.today(),
        )
        .into_iter()
        .next()
        {
            return Err(Error::validation(
                "id_number",
                format!("{}（出生日期、性别的修改请办理关键数据变更）", e.message),
            )
            .into());
        }
        Ok(Correction {
            name,
            id_type,
            id_number,
        })
    }

    /// A school's administrator takes an action on an open problem record of a student it holds;
    /// the action waits for the supervising authority. Answers the record as the detail shows it.
    pub async fn request_problem_action(
        &self,
        user: &CurrentUser,
        problem_id: i64,
        req: &ProblemActionRequest,
        evidence: Vec<Evidence>,
    ) -> AppResult<ProblemDetail> {
        let s = self.visible_subject(user, problem_id).await?;
        let holds =
            matches!(user.scope(), Scope::School { id, .. } if Some(id) == s.student_school_id);
        if user.role != Role::SchoolAdmin || !holds {
            return Err(Error::forbidden("问题学籍由学生所在学校的学籍管理员处理").into());
        }
        let action = req.action.trim();
        if !["confirm", "correct", "delete"].contains(&action) {
            return Err(Error::validation(
                "action",
                "处理方式应为 confirm（佐证）、correct（变更）或 delete（删除）",
            )
            .into());
        }
        let reason = refuse_empty(&req.reason, "reason", "处理说明")?;
        if req.version.is_some_and(|v| v != s.version) {
            return Err(Error::conflict().into());
        }
        match s.status.as_str() {
            "open" => {}
            "pending" => {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    "该问题学籍已有待主管部门审核的处理，请等待审核结果",
                )
                .into());
            }
            _ => {
                return Err(Error::new(ErrorCode::Conflict, "该问题学籍已处理完毕").into());
            }
        }
        let correction = if action == "correct" {
            Some(self.validate_correction(&s, req).await?)
        } else {
            if req.name.is_some() || req.id_number.is_some() || req.id_type.is_some() {
                return Err(
                    Error::validation("name", "只有“变更”可以填写更正后的姓名或证件号码").into(),
                );
            }
            None
        };
        let files = check_evidence(evidence)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let action_id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
            "INSERT INTO problem_actions (problem_id, student_id, action, status, reason, new_name, new_id_type, \
             new_id_number, old_name, old_id_type, old_id_number, school_id, authority_region, requested_by, requested_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id"
        ).bind(problem_id).bind(s.student_id).bind(action).bind(&reason)
        .bind(correction.as_ref().map(|c| c.name.clone()))
        .bind(correction.as_ref().map(|c| c.id_type.clone()))
        .bind(correction.as_ref().map(|c| c.id_number.clone()))
        .bind(&s.name).bind(&s.id_type).bind(&s.id_number).bind(s.school_id).bind(&s.authority_region)
        .bind(user.id).bind(now).fetch_one(&mut *c).await)?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE problem_records SET status = 'pending', version = version + 1 WHERE id = $1 AND status = 'open' AND version = $2"
        ).bind(problem_id).bind(s.version).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(Error::conflict().into());
        }
        let locked = on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO open_businesses (student_id, kind, ref_id, opened_at) VALUES ($1, 'problem_record', $2, $3)"
        ).bind(s.student_id).bind(action_id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()));
        if let Err(e) = locked {
            let e = AppError::from(e);
            if e.is_unique_violation() {
                return Err(Error::new(
                    ErrorCode::TransferInProgress,
                    "该学生有正在办理的业务（如转学、其他问题学籍处理），须等该业务办结后再处理",
                )
                .into());
            }
            return Err(e);
        }
        for (f, ct) in files {
            on_tx!(&mut tx, c => sqlx::query(
                "INSERT INTO problem_evidence (action_id, filename, content_type, size, data, uploaded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            ).bind(action_id).bind(&f.filename).bind(ct).bind(f.bytes.len() as i64).bind(&f.bytes).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "problem.request",
                entity_type: "problem_record",
                entity_id: problem_id.to_string(),
                before: Some(serde_json::json!({ "status": "open", "student_no": s.student_no })),
                after: Some(serde_json::json!({
                    "status": "pending",
                    "action": action,
                    "action_id": action_id,
                    "reason": reason,
                    "new_name": correction.as_ref().map(|c| c.name.clone()),
                    "new_id_number_masked": correction.as_ref().map(|c| mask_document(&c.id_number)),
                })),
            },
            None,
        )
        .await?;
        notify(
            &mut tx,
            &OrgRef::Authority(s.authority_region.clone()),
            "problem_waiting",
            None,
            &format!(
                "学校 {} 对问题学籍（{}，{}）申请{}，请审核",
                s.school_code,
                s.name,
                kind_label_zh(&s.kind),
                action_label_zh(action)
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        self.problem(user, problem_id).await
    }

    /// The supervising authority approves or refuses the pending action of a problem record.
    pub async fn decide_problem_action(
        &self,
        user: &CurrentUser,
        problem_id: i64,
        req: &ProblemDecision,
    ) -> AppResult<ProblemDetail> {
        let s = self.visible_subject(user, problem_id).await?;
        if user.role != Role::AuthorityAdmin {
            return Err(Error::forbidden("问题学籍的处理由学校的学籍主管部门审核").into());
        }
        let approve = match req.decision.trim() {
            "approve" => true,
            "refuse" | "reject" => false,
            _ => {
                return Err(Error::validation(
                    "decision",
                    "审核结果应为 approve（同意）或 refuse（不同意）",
                )
                .into());
            }
        };
        let opinion = req.opinion.trim().to_string();
        if !approve && opinion.is_empty() {
            return Err(
                Error::new(ErrorCode::ReasonRequired, "不同意时请填写审核意见")
                    .at("opinion")
                    .into(),
            );
        }
        if opinion.chars().count() > 500 {
            return Err(Error::validation("opinion", "审核意见不超过500字").into());
        }
        let pending: Option<PendingAction> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, action, new_name, new_id_type, new_id_number, authority_region FROM problem_actions \
             WHERE problem_id = $1 AND status = 'pending'"
        ).bind(problem_id).fetch_optional(p).await)?;
        let Some(PendingAction {
            id: action_id,
            action,
            new_name,
            new_id_type,
            new_id_number,
            authority_region: authority,
        }) = pending
        else {
            return Err(Error::new(ErrorCode::Conflict, "该问题学籍没有待审核的处理").into());
        };
        if !matches!(&user.org, OrgRef::Authority(r) if *r == authority) {
            return Err(
                Error::new(ErrorCode::NotYourTurn, "该处理由学校的学籍主管部门审核").into(),
            );
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = on_tx!(&mut tx, c => sqlx::query(
            "UPDATE problem_actions SET status = $1, decided_by = $2, decided_at = $3, opinion = $4 \
             WHERE id = $5 AND status = 'pending'"
        ).bind(if approve { "approved" } else { "refused" }).bind(user.id).bind(now)
        .bind((!opinion.is_empty()).then_some(&opinion)).bind(action_id)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(Error::conflict().into());
        }
        on_tx!(&mut tx, c => sqlx::query(
            "DELETE FROM open_businesses WHERE student_id = $1 AND kind = 'problem_record' AND ref_id = $2"
        ).bind(s.student_id).bind(action_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        let mut after = serde_json::json!({
            "action": action,
            "action_id": action_id,
            "decision": if approve { "approve" } else { "refuse" },
            "opinion": opinion,
        });
        if approve {
            let resolution = match action.as_str() {
                "confirm" => self.apply_confirm(&mut tx, &s, now).await?,
                "correct" => {
                    let c = Correction {
                        name: new_name.unwrap_or_else(|| s.name.clone()),
                        id_type: new_id_type.unwrap_or_else(|| s.id_type.clone()),
                        id_number: new_id_number.unwrap_or_else(|| s.id_number.clone()),
                    };
                    after["new_name"] = serde_json::json!(c.name);
                    after["new_id_number_masked"] = serde_json::json!(mask_document(&c.id_number));
                    self.apply_correction(&mut tx, &s, &c, now).await?
                }
                _ => self.apply_delete(&mut tx, &s, now).await?,
            };
            on_tx!(&mut tx, c => sqlx::query(
                "UPDATE problem_records SET status = 'resolved', resolution = $1, resolved_at = $2, version = version + 1 \
                 WHERE id = $3"
            ).bind(resolution).bind(now).bind(problem_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
            after["status"] = serde_json::json!("resolved");
            after["resolution"] = serde_json::json!(resolution);
        } else {
            on_tx!(&mut tx, c => sqlx::query(
                "UPDATE problem_records SET status = 'open', version = version + 1 WHERE id = $1"
            ).bind(problem_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
            after["status"] = serde_json::json!("open");
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: if approve {
                    "problem.approve"
                } else {
                    "problem.refuse"
                },
                entity_type: "problem_record",
                entity_id: problem_id.to_string(),
                before: Some(
                    serde_json::json!({ "status": "pending", "student_no": s.student_no }),
                ),
                after: Some(after),
            },
            None,
        )
        .await?;
        let text = if approve {
            format!(
                "问题学籍（{}，{}）的{}申请已获主管部门同意",
                s.name,
                kind_label_zh(&s.kind),
                action_label_zh(&action)
            )
        } else {
            format!(
                "问题学籍（{}，{}）的{}申请未获同意：{}",
                s.name,
                kind_label_zh(&s.kind),
                action_label_zh(&action),
                opinion
            )
        };
        notify(
            &mut tx,
            &OrgRef::School(s.school_code.clone()),
            if approve {
                "problem_approved"
            } else {
                "problem_refused"
            },
            None,
            &text,
            now,
        )
        .await?;
        tx.commit().await?;
        self.problem(user, problem_id).await
    }

    /// 佐证 approved: a failed identity check passes on the evidence; a duplicate is declared
    /// another person (nothing to change on the record).
    async fn apply_confirm(
        &self,
        tx: &mut Tx,
        s: &Subject,
        now: DateTime<Utc>,
    ) -> AppResult<&'static str> {
        let identity_kind = matches!(s.kind.as_str(), "id_not_found" | "name_mismatch");
        if !identity_kind || s.identity_status == "passed" {
            return Ok("confirmed");
        }
        let formal = if s.id_type == RESIDENT_ID {
            IdNumber::parse(&s.id_number)
                .ok()
                .map(|id| StudentNo::formal(&id))
        } else {
            None
        };
        if let Some(formal) = formal
            && formal.as_str() != s.student_no
        {
            let taken: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "SELECT COUNT(*) FROM student_numbers WHERE student_no = $1"
            ).bind(formal.as_str()).fetch_one(&mut *c).await)?;
            if taken > 0 {
                return Err(Error::new(
                    ErrorCode::DuplicatePerson,
                    "该身份证号码对应的学籍号已被使用，请改用“变更”核对证件号码",
                )
                .into());
            }
            let n = on_tx!(tx, c => sqlx::query(
                "UPDATE students SET student_no = $1, identity_status = 'passed', identity_checked_at = $2, \
                 version = version + 1, updated_at = $2 WHERE id = $3 AND student_no = $4"
            ).bind(formal.as_str()).bind(now).bind(s.student_id).bind(&s.student_no)
            .execute(&mut *c).await.map(|r| r.rows_affected()))?;
            if n == 0 {
                return Err(Error::conflict().into());
            }
            on_tx!(tx, c => {
                sqlx::query("UPDATE student_numbers SET replaced_at = $1 WHERE student_no = $2 AND replaced_at IS NULL")
                    .bind(now).bind(&s.student_no).execute(&mut *c).await?;
                sqlx::query("INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) VALUES ($1, $2, 'formal', $3)")
                    .bind(formal.as_str()).bind(s.student_id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected())?
            });
        } else {
            on_tx!(tx, c => sqlx::query(
                "UPDATE students SET identity_status = 'passed', identity_checked_at = $1, version = version + 1, \
                 updated_at = $1 WHERE id = $2"
            ).bind(now).bind(s.student_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        }
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO identity_checks (student_id, adapter, simulated, result, checked_at) \
             VALUES ($1, 'evidence', FALSE, 'confirmed_by_evidence', $2)"
        ).bind(s.student_id).bind(now).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        // Other identity problems of the same record are answered by the same evidence.
        on_tx!(tx, c => sqlx::query(
            "UPDATE problem_records SET status = 'resolved', resolution = 'confirmed', resolved_at = $1, version = version + 1 \
             WHERE student_id = $2 AND id <> $3 AND status = 'open' AND kind IN ('id_not_found', 'name_mismatch')"
        ).bind(now).bind(s.student_id).bind(s.problem_id).execute(&mut *c).await.map(|r| r.rows_affected()))?;
        Ok("confirmed")
    }

    /// 变更 approved: the corrected name and document replace the old ones (查重 once more).
    async fn apply_correction(
        &self,
        tx: &mut Tx,
        s: &Subject,
        c: &Correction,
        now: DateTime<Utc>,
    ) -> AppResult<&'static str> {
        let holder: Option<i64> = on_tx!(tx, conn => sqlx::query_scalar(
            "SELECT id FROM students WHERE id_type = $1 AND id_number = $2 AND id <> $3"
        ).bind(&c.id_type).bind(&c.id_number).bind(s.student_id).fetch_optional(&mut *conn).await)?;
        if holder.is_some() {
            return Err(Error::new(
                ErrorCode::DuplicatePerson,
                "更正后的证件号码已有学籍（一人一籍），不能同意该变更",
            )
            .into());
        }
        let identity_status = if c.id_type == RESIDENT_ID {
            "pending"
        } else {
            "not_applicable"
        };
        let n = on_tx!(tx, conn => sqlx::query(
            "UPDATE students SET name = $1, id_type = $2, id_number = $3, identity_status = $4, \
             version = version + 1, updated_at = $5 WHERE id = $6"
        ).bind(&c.name).bind(&c.id_type).bind(&c.id_number).bind(identity_status).bind(now).bind(s.student_id)
        .execute(&mut *conn).await.map(|r| r.rows_affected()));
        if let Err(e) = n {
            let e = AppError::from(e);
            if e.is_unique_violation() {
                return Err(Error::new(
                    ErrorCode::DuplicatePerson,
                    "更正后的证件号码已有学籍（一人一籍），不能同意该变更",
                )
                .into());
            }
            return Err(e);
        }
        if c.name != s.name {
            let similar: Vec<(i64, String, String)> = on_tx!(tx, conn => sqlx::query_as(
                "SELECT id, id_number, student_no FROM students WHERE name = $1 AND gender = $2 AND birth_date = $3 \
                 AND id <> $4 AND status <> 'deleted' ORDER BY id LIMIT 20"
            ).bind(&c.name).bind(&s.gender).bind(s.birth_date).bind(s.student_id).fetch_all(&mut *conn).await)?;
            for (other, number, _) in similar {
                let detail = format!(
                    "疑似重复：姓名变更后与已有学籍同姓名（{}）、同性别、同出生日期（{}），证件号码 {}",
                    c.name,
                    s.birth_date,
                    mask_document(&number)
                );
                on_tx!(tx, conn => sqlx::query(
                    "INSERT INTO problem_records (student_id, kind, status, detail, related_student_id, created_at) \
                     VALUES ($1, 'suspected_duplicate', 'open', $2, $3, $4)"
                ).bind(s.student_id).bind(&detail).bind(other).bind(now).execute(&mut *conn).await.map(|r| r.rows_affected()))?;
            }
        }
        Ok("corrected")
    }

    /// 删除 approved: the record leaves every list and its document is released; nothing of its
    /// history is removed (see the module documentation).
    async fn apply_delete(
        &self,
        tx: &mut Tx,
        s: &Subject,
        now: DateTime<Utc>,
    ) -> AppResult<&'static str> {
        let released = format!("{}#D{}", s.id_number, s.student_id);
        on_tx!(tx, c => {
            sqlx::query(
                "UPDATE students SET status = 'deleted', school_id = NULL, grade = NULL, class_id = NULL, \
                 id_number = $1, version = version + 1, updated_at = $2, \
                 identity_status = CASE WHEN identity_status = 'pending' THEN 'not_applicable' ELSE identity_status END \
                 WHERE id = $3"
            ).bind(&released).bind(now).bind(s.student_id).execute(&mut *c).await?;
            sqlx::query(
                "UPDATE enrollments SET status = 'deleted', ended_at = $1 WHERE student_id = $2 AND ended_at IS NULL"
            ).bind(now).bind(s.student_id).execute(&mut *c).await?;
            sqlx::query(
                "UPDATE student_numbers SET replaced_at = $1 WHERE student_id = $2 AND replaced_at IS NULL"
            ).bind(now).bind(s.student_id).execute(&mut *c).await?;
            sqlx::query(
                "UPDATE problem_records SET status = 'resolved', resolution = 'deleted', resolved_at = $1, version = version + 1 \
                 WHERE student_id = $2 AND id <> $3 AND status = 'open'"
            ).bind(now).bind(s.student_id).bind(s.problem_id).execute(&mut *c).await?;
            sqlx::query(
                "UPDATE problem_records SET status = 'resolved', resolution = 'related_deleted', resolved_at = $1, \
                 version = version + 1 WHERE related_student_id = $2 AND status = 'open'"
            ).bind(now).bind(s.student_id).execute(&mut *c).await.map(|r| r.rows_affected())?
        });
        Ok("deleted")
    }
}

/// Evidence files as transfers take them: JPG, PNG or PDF by content, at most 2 MB each.
fn check_evidence(evidence: Vec<Evidence>) -> Result<Vec<(Evidence, &'static str)>, Error> {
    let files: Vec<Evidence> = evidence
        .into_iter()
        .filter(|f| !f.bytes.is_empty())
        .collect();
    if files.len() > MAX_EVIDENCE_FILES {
        return Err(Error::validation(
            "evidence",
            format!("佐证材料最多{MAX_EVIDENCE_FILES}个文件"),
        ));
    }
    let mut out = vec![];
    for f in files {
        if f.bytes.len() > MAX_EVIDENCE_BYTES {
            return Err(Error::validation(
                "evidence",
                format!("材料“{}”超过2MB，请压缩后上传", f.filename),
            ));
        }
        let Some(ct) = evidence_type(&f.bytes) else {
            return Err(Error::validation(
                "evidence",
                format!("材料“{}”不是JPG、PNG或PDF文件", f.filename),
            ));
        };
        out.push((f, ct));
    }
    Ok(out)
}
