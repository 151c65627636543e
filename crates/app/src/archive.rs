//! 电子学籍档案: a student's record with its whole history, read from the tables that hold it —
//! enrollments (every school, grade and year), numbers (L → G), identity checks, problem records
//! with their actions, every transfer with its approvals, and the status and key-data changes
//! (学籍异动, `change_requests`) where that table exists. Visible to whoever may see the student
//! (`App::student`), and the identity number whole only to the school holding the student now.

use chrono::{DateTime, Utc};
use serde::Serialize;
use xueji_domain::Error;

use crate::auth::CurrentUser;
use crate::error::AppResult;
use crate::problems::ProblemActionOut;
use crate::students::StudentDetail;
use crate::{App, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct IdentityCheckOut {
    /// `simulated`, `evidence` (佐证 approved by the authority), …
    pub adapter: String,
    pub simulated: bool,
    /// `match`, `not_found`, `name_mismatch`, `confirmed_by_evidence`.
    pub result: String,
    pub checked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArchiveProblem {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub actions: Vec<ProblemActionOut>,
}

/// One decision of a chain (a transfer's review step, a change's step).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ArchiveStep {
    /// The step's code (`in_school`, `out_authority`, …).
    pub code: String,
    /// `school` or `authority`.
    pub party_kind: String,
    /// A school code or an authority's region code.
    pub party_code: String,
    /// `approve`, `reject`, or null while undecided.
    pub decision: Option<String>,
    pub opinion: Option<String>,
    pub actor_name: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArchiveTransfer {
    pub id: i64,
    /// `cross_province` or `intra_province`.
    pub kind: String,
    pub status: String,
    pub from_school: String,
    pub from_school_name: String,
    pub to_school: String,
    pub to_school_name: String,
    pub from_grade: String,
    pub to_grade: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub pulled_at: Option<DateTime<Utc>>,
    pub steps: Vec<ArchiveStep>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArchiveChange {
    pub id: i64,
    /// `suspension`, `resumption`, …, `key_change`.
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    pub steps: Vec<ArchiveStep>,
}

/// The electronic archive (电子学籍档案).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudentArchive {
    #[serde(flatten)]
    pub student: StudentDetail,
    /// `pending`, `passed`, `failed` or `not_applicable`.
    pub identity_status: String,
    pub identity_checks: Vec<IdentityCheckOut>,
    pub problems: Vec<ArchiveProblem>,
    pub transfers: Vec<ArchiveTransfer>,
    pub changes: Vec<ArchiveChange>,
}

#[derive(sqlx::FromRow)]
struct ProblemRow {
    id: i64,
    kind: String,
    status: String,
    detail: String,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolution: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TransferRow {
    id: i64,
    kind: String,
    status: String,
    from_school: String,
    from_school_name: String,
    to_school: String,
    to_school_name: String,
    from_grade: String,
    to_grade: String,
    reason: String,
    created_at: DateTime<Utc>,
    pulled_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    id: i64,
    kind: String,
    status: String,
    reason: String,
    created_at: DateTime<Utc>,
    applied_at: Option<DateTime<Utc>>,
}

impl App {
    /// A student's electronic archive, if the caller may see the student.
    pub async fn student_archive(
        &self,
        user: &CurrentUser,
        student_no: &str,
    ) -> AppResult<StudentArchive> {
        let student = self.student(user, student_no).await?;
        let no = student_no.trim().to_uppercase();
        let found: Option<(i64, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT st.id, st.identity_status FROM student_numbers n JOIN students st ON st.id = n.student_id \
             WHERE n.student_no = $1"
        ).bind(&no).fetch_optional(p).await)?;
        let Some((id, identity_status)) = found else {
            return Err(Error::not_found("该学生").into());
        };
        let identity_checks: Vec<IdentityCheckOut> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT adapter, simulated, result, checked_at FROM identity_checks WHERE student_id = $1 ORDER BY id"
        ).bind(id).fetch_all(p).await)?;
        let problem_rows: Vec<ProblemRow> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, kind, status, detail, created_at, resolved_at, resolution FROM problem_records \
             WHERE student_id = $1 ORDER BY id"
        ).bind(id).fetch_all(p).await)?;
        let mut problems = Vec::with_capacity(problem_rows.len());
        for r in problem_rows {
            let actions = self.problem_actions_of("pa.problem_id = $1", r.id).await?;
            problems.push(ArchiveProblem {
                id: r.id,
                kind: r.kind,
                status: r.status,
                detail: r.detail,
                created_at: r.created_at,
                resolved_at: r.resolved_at,
                resolution: r.resolution,
                actions,
            });
        }
        let transfer_rows: Vec<TransferRow> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT t.id, t.kind, t.status, t.from_school, fs.name AS from_school_name, t.to_school, \
             ts.name AS to_school_name, t.from_grade, t.to_grade, t.reason, t.created_at, t.pulled_at \
             FROM transfers t JOIN schools fs ON fs.id = t.from_school_id JOIN schools ts ON ts.id = t.to_school_id \
             WHERE t.student_id = $1 ORDER BY t.id"
        ).bind(id).fetch_all(p).await)?;
        let mut transfers = Vec::with_capacity(transfer_rows.len());
        for t in transfer_rows {
            let steps: Vec<ArchiveStep> = on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT code, party_kind, party_code, decision, opinion, actor_name, decided_at \
                 FROM transfer_steps WHERE transfer_id = $1 ORDER BY idx"
            ).bind(t.id).fetch_all(p).await)?;
            transfers.push(ArchiveTransfer {
                id: t.id,
                kind: t.kind,
                status: t.status,
                from_school: t.from_school,
                from_school_name: t.from_school_name,
                to_school: t.to_school,
                to_school_name: t.to_school_name,
                from_grade: t.from_grade,
                to_grade: t.to_grade,
                reason: t.reason,
                created_at: t.created_at,
                pulled_at: t.pulled_at,
                steps,
            });
        }
        let changes = self.archive_changes(id).await;
        Ok(StudentArchive {
            student,
            identity_status,
            identity_checks,
            problems,
            transfers,
            changes,
        })
    }

    /// The student's 学籍异动 requests with their steps. The tables belong to the status-change
    /// feature; a database without them (or a failed read) shows none rather than failing the
    /// whole archive.
    async fn archive_changes(&self, student_id: i64) -> Vec<ArchiveChange> {
        let rows: Result<Vec<ChangeRow>, sqlx::Error> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, kind, status, reason, created_at, applied_at FROM change_requests \
             WHERE student_id = $1 ORDER BY id"
        ).bind(student_id).fetch_all(p).await);
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "archive: status changes not readable");
                return vec![];
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for c in rows {
            let steps: Vec<ArchiveStep> = on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT code, party_kind, party_code, decision, opinion, actor_name, decided_at \
                 FROM change_steps WHERE change_id = $1 ORDER BY idx"
            ).bind(c.id).fetch_all(p).await)
            .unwrap_or_default();
            out.push(ArchiveChange {
                id: c.id,
                kind: c.kind,
                status: c.status,
                reason: c.reason,
                created_at: c.created_at,
                applied_at: c.applied_at,
                steps,
            });
        }
        out
    }
}
