//! 公安比对 (identity check) and formal numbers (正式学籍号).
//!
//! [`IdentityService`] is the seam to the Ministry of Public Security's population register.
//! That service is not public, so xueji ships [`SimulatedIdentityService`]: deterministic, driven
//! by `data/identity_sim.csv` — every resident identity number listed there fails as listed
//! (不存在 / 姓名不匹配), every other number matches. Everything that reports a check says whether
//! the answering adapter was simulated (`"simulated": true`).
//!
//! The batch job ([`App::run_identity_checks`]) takes pending records (registered with an L
//! number and a 居民身份证), asks the service, and per student in one transaction with its audit
//! row: a match gets the formal number `G` + identity number, the L number staying in
//! `student_numbers` with `replaced_at` set; a failure keeps the L number and becomes a problem
//! record (问题学籍) of kind `id_not_found` or `name_mismatch`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::LazyLock;

use serde::Serialize;
use xueji_domain::Error;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{IdNumber, RegionLevel, StudentNo};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::{CurrentUser, Scope};
use crate::error::{AppError, AppResult};
use crate::{App, on_pool, on_tx};

const SIMULATION_CSV: &str = include_str!("../../../data/identity_sim.csv");

/// Records checked per transaction.
const CHECK_BATCH: usize = 100;

/// What the register says about a (name, identity number) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityResult {
    /// 比对通过.
    Match,
    /// 不存在: the register has no such number.
    NotFound,
    /// 姓名不匹配: the register holds another name for the number.
    NameMismatch,
}

impl IdentityResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::NotFound => "not_found",
            Self::NameMismatch => "name_mismatch",
        }
    }

    /// The problem record kind of a failure.
    pub fn problem_kind(self) -> Option<&'static str> {
        match self {
            Self::Match => None,
            Self::NotFound => Some("id_not_found"),
            Self::NameMismatch => Some("name_mismatch"),
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Match => "比对通过",
            Self::NotFound => "身份证号码不存在",
            Self::NameMismatch => "姓名与身份证号码不匹配",
        }
    }
}

/// The identity check service (公安比对).
pub trait IdentityService: Send + Sync {
    /// A short name of the adapter, e.g. `simulated`.
    fn adapter(&self) -> &str;

    /// Whether the answers are simulated (not from the real register).
    fn simulated(&self) -> bool;

    /// Checks one person. An `Err` is a failure of the service (the record stays pending).
    fn check(
        &self,
        name: &str,
        id_number: &str,
    ) -> impl Future<Output = AppResult<IdentityResult>> + Send;
}

/// The documented simulation of the register (see the module documentation and
/// `data/identity_sim.csv`).
#[derive(Debug, Clone, Default)]
pub struct SimulatedIdentityService {
    failures: HashMap<String, IdentityResult>,
}

impl SimulatedIdentityService {
    /// The simulation shipped in `data/identity_sim.csv`.
    pub fn embedded() -> Self {
        Self::from_csv(SIMULATION_CSV).expect("data/identity_sim.csv is well-formed")
    }

    /// One shared instance of the shipped simulation.
    pub fn shared() -> &'static Self {
        static SHARED: LazyLock<SimulatedIdentityService> =
            LazyLock::new(SimulatedIdentityService::embedded);
        &SHARED
    }

    /// Reads `id_number,result[,note]` lines (`#` comments, one header line).
    pub fn from_csv(text: &str) -> Result<Self, String> {
        let mut failures = HashMap::new();
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .skip(1);
        for (i, l) in lines.enumerate() {
            let mut parts = l.split(',');
            let number = parts.next().unwrap_or("").trim();
            let result = match parts.next().unwrap_or("").trim() {
                "not_found" => IdentityResult::NotFound,
                "name_mismatch" => IdentityResult::NameMismatch,
                other => return Err(format!("line {}: unknown result {other:?}", i + 2)),
            };
            let id =
                IdNumber::parse(number).map_err(|e| format!("line {}: {}", i + 2, e.message))?;
            failures.insert(id.as_str().to_string(), result);
        }
        Ok(Self { failures })
    }

    /// The numbers the simulation fails, with their results.
    pub fn failures(&self) -> impl Iterator<Item = (&str, IdentityResult)> {
        self.failures.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

impl IdentityService for SimulatedIdentityService {
    fn adapter(&self) -> &str {
        "simulated"
    }

    fn simulated(&self) -> bool {
        true
    }

    fn check(
        &self,
        _name: &str,
        id_number: &str,
    ) -> impl Future<Output = AppResult<IdentityResult>> + Send {
        let r = self
            .failures
            .get(&id_number.trim().to_ascii_uppercase())
            .copied()
            .unwrap_or(IdentityResult::Match);
        std::future::ready(Ok(r))
    }
}

/// What a run of the batch did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct IdentityRunReport {
    /// The adapter that answered.
    pub adapter: String,
    /// `true` when the answers were simulated, not the Ministry of Public Security's.
    pub simulated: bool,
    pub checked: u64,
    /// Formal numbers issued.
    pub passed: u64,
    /// 不存在 → problem records `id_not_found`.
    pub not_found: u64,
    /// 姓名不匹配 → problem records `name_mismatch`.
    pub name_mismatch: u64,
    /// Pending records left in the caller's scope.
    pub pending: i64,
}

/// The identity check's state for the caller's scope.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityStatus {
    pub adapter: String,
    /// `true`: the Ministry of Public Security's service is not connected; answers come from the
    /// documented simulation (`data/identity_sim.csv`).
    pub simulated: bool,
    /// Records waiting for the check in the caller's scope.
    pub pending: i64,
    /// Open problem records (问题学籍) from failed checks in the caller's scope.
    pub failed: i64,
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: i64,
    student_no: String,
    name: String,
    id_number: String,
}

impl App {
    fn identity_scope(&self, user: &CurrentUser) -> AppResult<(String, String)> {
        let allowed = match (&user.org, user.role) {
            (OrgRef::National, Role::NationalAdmin) => true,
            (OrgRef::Authority(_), Role::AuthorityAdmin) => {
                matches!(user.scope(), Scope::Region(ref r) if r.level() == RegionLevel::Province)
            }
            _ => false,
        };
        if !allowed {
            return Err(Error::forbidden("公安比对由全国或省级学籍主管部门发起").into());
        }
        Ok(user
            .scope()
            .region_range(None)
            .unwrap_or_else(|| ("000000".into(), "999999".into())))
    }

    async fn identity_counts(&self, lo: &str, hi: &str) -> AppResult<(i64, i64)> {
        let pending: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM students WHERE identity_status = 'pending' AND region_code >= $1 AND region_code < $2"
        ).bind(lo).bind(hi).fetch_one(p).await)?;
        let failed: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM problem_records pr JOIN students st ON st.id = pr.student_id \
             WHERE pr.status = 'open' AND pr.kind IN ('id_not_found', 'name_mismatch') \
             AND st.region_code >= $1 AND st.region_code < $2"
        ).bind(lo).bind(hi).fetch_one(p).await)?;
        Ok((pending, failed))
    }

    /// The identity check's adapter and queue, for the national or a provincial authority.
    pub async fn identity_status<S: IdentityService>(
        &self,
        user: &CurrentUser,
        service: &S,
    ) -> AppResult<IdentityStatus> {
        let (lo, hi) = self.identity_scope(user)?;
        let (pending, failed) = self.identity_counts(&lo, &hi).await?;
        Ok(IdentityStatus {
            adapter: service.adapter().to_string(),
            simulated: service.simulated(),
            pending,
            failed,
        })
    }

    /// Runs the batch for the caller's province (the national administrator: the nation).
    pub async fn run_identity_checks_as<S: IdentityService>(
        &self,
        user: &CurrentUser,
        service: &S,
        limit: usize,
    ) -> AppResult<IdentityRunReport> {
        let (lo, hi) = self.identity_scope(user)?;
        self.identity_batch(&user.audit_actor(), service, limit, &lo, &hi)
            .await
    }

    /// Runs the batch nationwide as the system (a scheduled job): at most `limit` pending
    /// records, oldest first.
    pub async fn run_identity_checks<S: IdentityService>(
        &self,
        service: &S,
        limit: usize,
    ) -> AppResult<IdentityRunReport> {
        self.identity_batch(
            &AuditActor::system("identity-check"),
            service,
            limit,
            "000000",
            "999999",
        )
        .await
    }

    async fn identity_batch<S: IdentityService>(
        &self,
        actor: &AuditActor,
        service: &S,
        limit: usize,
        lo: &str,
        hi: &str,
    ) -> AppResult<IdentityRunReport> {
        let mut report = IdentityRunReport {
            adapter: service.adapter().to_string(),
            simulated: service.simulated(),
            ..Default::default()
        };
        let mut after_id = 0i64;
        let mut left = limit;
        while left > 0 {
            let take = left.min(CHECK_BATCH);
            let rows: Vec<Pending> = on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT id, student_no, name, id_number FROM students \
                 WHERE identity_status = 'pending' AND id > $1 AND region_code >= $2 AND region_code < $3 \
                 ORDER BY id LIMIT $4"
            ).bind(after_id).bind(lo).bind(hi).bind(take as i64).fetch_all(p).await)?;
            if rows.is_empty() {
                break;
            }
            left -= rows.len();
            after_id = rows.last().map(|r| r.id).unwrap_or(after_id);
            let mut answers = Vec::with_capacity(rows.len());
            for r in rows {
                match service.check(&r.name, &r.id_number).await {
                    Ok(a) => answers.push((r, a)),
                    // The service failed for this one: it stays pending for the next run.
                    Err(e) => {
                        tracing::warn!(error = %e, "identity check failed; record stays pending")
                    }
                }
            }
            let now = self.clock.now();
            let mut tx = self.db.begin().await?;
            for (r, answer) in answers {
                let applied = match answer {
                    IdentityResult::Match => {
                        let Ok(id) = IdNumber::parse(&r.id_number) else {
                            continue;
                        };
                        let formal = StudentNo::formal(&id);
                        let taken: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
                            "SELECT COUNT(*) FROM student_numbers WHERE student_no = $1"
                        ).bind(formal.as_str()).fetch_one(&mut *c).await)?;
                        if taken > 0 {
                            continue;
                        }
                        let n = on_tx!(&mut tx, c => sqlx::query(
                            "UPDATE students SET student_no = $1, identity_status = 'passed', identity_checked_at = $2, \
                             version = version + 1, updated_at = $2 WHERE id = $3 AND identity_status = 'pending' AND student_no = $4"
                        ).bind(formal.as_str()).bind(now).bind(r.id).bind(&r.student_no)
                        .execute(&mut *c).await.map(|x| x.rows_affected()))?;
                        if n == 0 {
                            continue;
                        }
                        on_tx!(&mut tx, c => {
                            sqlx::query("UPDATE student_numbers SET replaced_at = $1 WHERE student_no = $2 AND replaced_at IS NULL")
                                .bind(now).bind(&r.student_no).execute(&mut *c).await?;
                            sqlx::query("INSERT INTO student_numbers (student_no, student_id, kind, assigned_at) VALUES ($1, $2, 'formal', $3)")
                                .bind(formal.as_str()).bind(r.id).bind(now).execute(&mut *c).await.map(|x| x.rows_affected())?
                        });
                        report.passed += 1;
                        Some(formal.as_str().to_string())
                    }
                    failure => {
                        let n = on_tx!(&mut tx, c => sqlx::query(
                            "UPDATE students SET identity_status = 'failed', identity_checked_at = $1, version = version + 1, \
                             updated_at = $1 WHERE id = $2 AND identity_status = 'pending'"
                        ).bind(now).bind(r.id).execute(&mut *c).await.map(|x| x.rows_affected()))?;
                        if n == 0 {
                            continue;
                        }
                        let detail = format!("公安比对未通过：{}", failure.label_zh());
                        on_tx!(&mut tx, c => sqlx::query(
                            "INSERT INTO problem_records (student_id, kind, status, detail, created_at) VALUES ($1, $2, 'open', $3, $4)"
                        ).bind(r.id).bind(failure.problem_kind()).bind(&detail).bind(now)
                        .execute(&mut *c).await.map(|x| x.rows_affected()))?;
                        if failure == IdentityResult::NotFound {
                            report.not_found += 1;
                        } else {
                            report.name_mismatch += 1;
                        }
                        None
                    }
                };
                report.checked += 1;
                on_tx!(&mut tx, c => sqlx::query(
                    "INSERT INTO identity_checks (student_id, adapter, simulated, result, checked_at) VALUES ($1, $2, $3, $4, $5)"
                ).bind(r.id).bind(service.adapter()).bind(service.simulated()).bind(answer.as_str()).bind(now)
                .execute(&mut *c).await.map(|x| x.rows_affected()))?;
                let entity = applied.clone().unwrap_or_else(|| r.student_no.clone());
                audit::record(
                    &mut tx,
                    now,
                    actor,
                    AuditEvent {
                        action: "student.identity_check",
                        entity_type: "student",
                        entity_id: entity,
                        before: Some(serde_json::json!({ "student_no": r.student_no, "identity_status": "pending" })),
                        after: Some(serde_json::json!({
                            "student_no": applied.as_deref().unwrap_or(&r.student_no),
                            "identity_status": if applied.is_some() { "passed" } else { "failed" },
                            "result": answer.as_str(),
                            "problem": answer.problem_kind(),
                            "adapter": service.adapter(),
                            "simulated": service.simulated(),
                        })),
                    },
                    None,
                )
                .await?;
            }
            tx.commit().await.map_err(|e: AppError| e)?;
        }
        let (pending, _) = self.identity_counts(lo, hi).await?;
        report.pending = pending;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_shipped_simulation_fails_exactly_its_listed_numbers() {
        let sim = SimulatedIdentityService::embedded();
        assert!(sim.simulated());
        assert!(sim.failures().count() >= 4);
        for (number, result) in sim.failures() {
            assert_ne!(result, IdentityResult::Match);
            assert_eq!(sim.check("任意", number).await.unwrap(), result);
        }
        let other = IdNumber::from_parts(
            "410105",
            chrono::NaiveDate::from_ymd_opt(2018, 5, 5).unwrap(),
            1,
        );
        assert_eq!(
            sim.check("张三", other.as_str()).await.unwrap(),
            IdentityResult::Match
        );
    }

    #[test]
    fn a_malformed_simulation_file_is_refused() {
        assert!(
            SimulatedIdentityService::from_csv("id_number,result\n410105201803159918,maybe\n")
                .is_err()
        );
        assert!(
            SimulatedIdentityService::from_csv("id_number,result\n410105201803159919,not_found\n")
                .is_err()
        );
    }
}
