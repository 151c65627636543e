//! 升级 / 毕业: the batch change at the switch of the school year.
//!
//! Every 在籍 (`enrolled`) student of the schools in scope moves up one grade — to the next grade
//! the school teaches (a 九年一贯制 school's 六年级 goes on to its 初一) — into the class of the
//! same name in the new grade (`三年级（1）班` → `四年级（1）班`; created with the old class's
//! capacity when the school has none). Students of a school's final grade graduate: status
//! `graduated` (毕业), their enrollment ended with status `graduated`; like a student transferred
//! out they leave the school's list of enrolled students and their class place, and the school
//! keeps reading their archive through that enrollment. Suspended (休学) and other non-enrolled students stay where they
//! are. Each move ends the enrollment row (status `promoted`) and opens the next one, so the
//! archive shows every year.
//!
//! The run is refused, and nothing changes, while any affected student has an open business
//! (在办业务): the refusal names them, and [`App::promotion_blockers`] lists them all for the
//! clean-up (在办业务清理). Schools are done one per transaction (the SQL is per class, not per
//! student), each with ONE audit row holding its counts and a notification to the school;
//! `promotion_runs` records each (school, year), so running the same year again changes nothing
//! and an interrupted run resumes where it stopped. The open-business check is repeated inside
//! each school's transaction: should a business open meanwhile, the run stops there (the schools
//! already done stay done and are skipped by the next run).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{Grade, RegionCode};
use xueji_domain::{Error, ErrorCode};

use crate::audit::{self, AuditActor, AuditEvent};
use crate::auth::CurrentUser;
use crate::db::Tx;
use crate::error::AppResult;
use crate::notifications::notify;
use crate::registration::school_year_of;
use crate::{App, on_pool, on_tx};

/// Students named in a refusal's message (the clean-up list has them all).
const NAMED_IN_REFUSAL: usize = 10;

/// What an authority (or the national administrator) runs.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionRequest {
    /// The school year that begins (e.g. `2026` for 2026—2027): the final grades graduate in
    /// that summer.
    pub year: i32,
    /// Only the schools of this region subtree (within the caller's jurisdiction).
    #[serde(default)]
    pub region: Option<String>,
}

/// A student whose open business blocks the run (在办业务清理).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PromotionBlocker {
    pub student_no: String,
    pub name: String,
    pub school: String,
    pub school_name: String,
    pub grade: Option<String>,
    /// The open business: `transfer`, `problem_record`, …
    pub business: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PromotionReport {
    pub year: i32,
    /// Schools in scope.
    pub schools: u64,
    /// Schools promoted by this run.
    pub schools_done: u64,
    /// Schools already promoted for this year (skipped).
    pub schools_skipped: u64,
    /// Students moved up one grade.
    pub promoted: u64,
    /// Students of a final grade who graduated.
    pub graduated: u64,
}

/// Progress after each school.
#[derive(Debug, Clone, Copy)]
pub struct PromotionProgress {
    pub schools_seen: u64,
    pub schools_total: u64,
    pub promoted: u64,
    pub graduated: u64,
}

#[derive(sqlx::FromRow)]
struct SchoolRow {
    id: i64,
    code: String,
    grades: String,
}

/// The next grade a school teaches after `g`, or `None` when `g` is its final grade.
pub fn next_grade(school_grades: &[Grade], g: Grade) -> Option<Grade> {
    school_grades.iter().copied().filter(|x| *x > g).min()
}

/// The name of a class after its students move up: the grade's label replaced.
pub fn promoted_class_name(name: &str, from: Grade, to: Grade) -> String {
    name.replacen(from.label_zh(), to.label_zh(), 1)
}

const BLOCKERS_SQL: &str = "SELECT st.student_no, st.name, sc.code AS school, sc.name AS school_name, st.grade, \
    ob.kind AS business FROM open_businesses ob JOIN students st ON st.id = ob.student_id \
    JOIN schools sc ON sc.id = st.school_id \
    WHERE st.status = 'enrolled' AND sc.region_code >= $1 AND sc.region_code < $2 \
    AND NOT EXISTS (SELECT 1 FROM promotion_runs r WHERE r.school_id = sc.id AND r.school_year = $3)";

impl App {
    /// The region range an authority or the national administrator may promote.
    fn promotion_range(
        &self,
        user: &CurrentUser,
        region: Option<&str>,
    ) -> AppResult<(String, String)> {
        let allowed = matches!(
            (&user.org, user.role),
            (OrgRef::National, Role::NationalAdmin) | (OrgRef::Authority(_), Role::AuthorityAdmin)
        );
        if !allowed {
            return Err(Error::forbidden("升级和毕业由学籍主管部门办理").into());
        }
        let filter = match region.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => Some(RegionCode::parse(r).map_err(|e| e.at("region"))?),
            None => None,
        };
        user.scope()
            .region_range(filter.as_ref())
            .ok_or_else(|| Error::not_found("该地区").into())
    }

    fn check_year(&self, year: i32) -> AppResult<()> {
        let current = school_year_of(self.clock.today());
        if !(2000..=current + 1).contains(&year) {
            return Err(
                Error::validation("year", format!("学年应在2000到{}之间", current + 1)).into(),
            );
        }
        Ok(())
    }

    /// The students of the caller's jurisdiction whose open business blocks the year's run.
    pub async fn promotion_blockers(
        &self,
        user: &CurrentUser,
        year: i32,
        region: Option<&str>,
    ) -> AppResult<Vec<PromotionBlocker>> {
        let (lo, hi) = self.promotion_range(user, region)?;
        self.blockers_in(year, &lo, &hi).await
    }

    /// The blocking students of a region range (for the command line).
    pub async fn blockers_in(
        &self,
        year: i32,
        lo: &str,
        hi: &str,
    ) -> AppResult<Vec<PromotionBlocker>> {
        let sql = format!("{BLOCKERS_SQL} ORDER BY sc.code, st.grade, st.id");
        Ok(
            on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(lo).bind(hi).bind(i64::from(year)).fetch_all(p).await)?,
        )
    }

    /// Runs 升级/毕业 for the caller's jurisdiction (optionally one region of it).
    pub async fn promote_as(
        &self,
        user: &CurrentUser,
        req: &PromotionRequest,
        progress: &(dyn Fn(PromotionProgress) + Send + Sync),
    ) -> AppResult<PromotionReport> {
        let (lo, hi) = self.promotion_range(user, req.region.as_deref())?;
        self.promote_range(&user.audit_actor(), req.year, &lo, &hi, progress)
            .await
    }

    /// Runs 升级/毕业 for the schools whose region code lies in `[lo, hi)`, as `actor` (the command
    /// line runs it as the system).
    pub async fn promote_range(
        &self,
        actor: &AuditActor,
        year: i32,
        lo: &str,
        hi: &str,
        progress: &(dyn Fn(PromotionProgress) + Send + Sync),
    ) -> AppResult<PromotionReport> {
        self.check_year(year)?;
        let blockers = self.blockers_in(year, lo, hi).await?;
        if !blockers.is_empty() {
            return Err(refusal(&blockers).into());
        }
        let schools: Vec<SchoolRow> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, code, grades FROM schools WHERE region_code >= $1 AND region_code < $2 ORDER BY code"
        ).bind(lo).bind(hi).fetch_all(p).await)?;
        let mut report = PromotionReport {
            year,
            schools: schools.len() as u64,
            ..Default::default()
        };
        for (i, school) in schools.iter().enumerate() {
            match self.promote_school(actor, year, school).await? {
                Some((promoted, graduated)) => {
                    report.schools_done += 1;
                    report.promoted += promoted;
                    report.graduated += graduated;
                }
                None => report.schools_skipped += 1,
            }
            progress(PromotionProgress {
                schools_seen: i as u64 + 1,
                schools_total: report.schools,
                promoted: report.promoted,
                graduated: report.graduated,
            });
        }
        Ok(report)
    }

    /// One school in one transaction; `None` when it was already done for the year.
    async fn promote_school(
        &self,
        actor: &AuditActor,
        year: i32,
        school: &SchoolRow,
    ) -> AppResult<Option<(u64, u64)>> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let claimed = on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO promotion_runs (school_id, school_year, promoted, graduated, run_at, run_by) \
             VALUES ($1, $2, 0, 0, $3, $4) ON CONFLICT (school_id, school_year) DO NOTHING"
        ).bind(school.id).bind(i64::from(year)).bind(now).bind(&actor.name)
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        if claimed == 0 {
            return Ok(None);
        }
        let blocked: Vec<PromotionBlocker> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT st.student_no, st.name, sc.code AS school, sc.name AS school_name, st.grade, ob.kind AS business \
             FROM open_businesses ob JOIN students st ON st.id = ob.student_id JOIN schools sc ON sc.id = st.school_id \
             WHERE st.status = 'enrolled' AND st.school_id = $1 ORDER BY st.id"
        ).bind(school.id).fetch_all(&mut *c).await)?;
        if !blocked.is_empty() {
            return Err(refusal(&blocked).into());
        }
        let mut grades: Vec<Grade> = school
            .grades
            .split(',')
            .filter_map(|g| Grade::parse(g).ok())
            .collect();
        grades.sort();
        let classes: Vec<(i64, String, String, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
            "SELECT id, grade, name, capacity FROM classes WHERE school_id = $1 ORDER BY grade, name"
        ).bind(school.id).fetch_all(&mut *c).await)?;
        let mut by_name: HashMap<(String, String), i64> = classes
            .iter()
            .map(|(id, g, n, _)| ((g.clone(), n.clone()), *id))
            .collect();
        let (mut promoted, mut graduated) = (0u64, 0u64);
        // Highest grade first: each grade moves into places the one above has just left.
        for &g in grades.iter().rev() {
            match next_grade(&grades, g) {
                None => graduated += graduate_grade(&mut tx, school.id, g, now).await?,
                Some(n) => {
                    for (old_id, _, name, capacity) in
                        classes.iter().filter(|(_, cg, _, _)| *cg == g.code())
                    {
                        let new_name = promoted_class_name(name, g, n);
                        let target = match by_name.get(&(n.code(), new_name.clone())) {
                            Some(id) => *id,
                            None => {
                                let id: i64 = on_tx!(&mut tx, c => sqlx::query_scalar(
                                    "INSERT INTO classes (school_id, grade, name, capacity) VALUES ($1, $2, $3, $4) RETURNING id"
                                ).bind(school.id).bind(n.code()).bind(&new_name).bind(capacity)
                                .fetch_one(&mut *c).await)?;
                                by_name.insert((n.code(), new_name), id);
                                id
                            }
                        };
                        promoted +=
                            move_class(&mut tx, school.id, g, Some(*old_id), n, Some(target), now)
                                .await?;
                    }
                    promoted += move_class(&mut tx, school.id, g, None, n, None, now).await?;
                }
            }
        }
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE promotion_runs SET promoted = $1, graduated = $2 WHERE school_id = $3 AND school_year = $4"
        ).bind(promoted as i64).bind(graduated as i64).bind(school.id).bind(i64::from(year))
        .execute(&mut *c).await.map(|r| r.rows_affected()))?;
        audit::record(
            &mut tx,
            now,
            actor,
            AuditEvent {
                action: "school.promote",
                entity_type: "school",
                entity_id: school.code.clone(),
                before: None,
                after: Some(serde_json::json!({
                    "school_year": year,
                    "promoted": promoted,
                    "graduated": graduated,
                })),
            },
            None,
        )
        .await?;
        notify(
            &mut tx,
            &OrgRef::School(school.code.clone()),
            "promotion_done",
            None,
            &format!("{year}学年升级完成：升级{promoted}人，毕业{graduated}人"),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some((promoted, graduated)))
    }
}

/// `transfer_in_progress`, naming the first blocking students.
fn refusal(blockers: &[PromotionBlocker]) -> Error {
    let named: Vec<String> = blockers
        .iter()
        .take(NAMED_IN_REFUSAL)
        .map(|b| format!("{}（{}，{}）", b.name, b.student_no, b.school_name))
        .collect();
    Error::new(
        ErrorCode::TransferInProgress,
        format!(
            "有{}名学生存在在办业务，须先办结或撤销（在办业务清理）后再升级：{}{}",
            blockers.len(),
            named.join("、"),
            if blockers.len() > NAMED_IN_REFUSAL {
                " 等"
            } else {
                ""
            }
        ),
    )
}

/// Moves the enrolled students of one class (or those without a class) of grade `from` to the
/// grade `to`, ending their enrollment rows and opening the next.
async fn move_class(
    tx: &mut Tx,
    school_id: i64,
    from: Grade,
    class_id: Option<i64>,
    to: Grade,
    target: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let which = "school_id = $1 AND grade = $2 AND status = 'enrolled' AND \
        (($3 IS NULL AND class_id IS NULL) OR class_id = $3)";
    let end = format!(
        "UPDATE enrollments SET status = 'promoted', ended_at = $4 WHERE ended_at IS NULL \
         AND student_id IN (SELECT id FROM students WHERE {which})"
    );
    let open = format!(
        "INSERT INTO enrollments (student_id, school_id, grade, class_id, status, started_at) \
         SELECT id, school_id, $4, $5, 'active', $6 FROM students WHERE {which}"
    );
    let update = format!(
        "UPDATE students SET grade = $4, class_id = $5, version = version + 1, updated_at = $6 WHERE {which}"
    );
    let n = on_tx!(tx, c => {
        sqlx::query(sqlx::AssertSqlSafe(end.as_str()))
            .bind(school_id).bind(from.code()).bind(class_id).bind(now)
            .execute(&mut *c).await?;
        sqlx::query(sqlx::AssertSqlSafe(open.as_str()))
            .bind(school_id).bind(from.code()).bind(class_id).bind(to.code()).bind(target).bind(now)
            .execute(&mut *c).await?;
        sqlx::query(sqlx::AssertSqlSafe(update.as_str()))
            .bind(school_id).bind(from.code()).bind(class_id).bind(to.code()).bind(target).bind(now)
            .execute(&mut *c).await.map(|r| r.rows_affected())?
    });
    Ok(n)
}

/// The enrolled students of a school's final grade graduate.
async fn graduate_grade(
    tx: &mut Tx,
    school_id: i64,
    g: Grade,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let n = on_tx!(tx, c => {
        sqlx::query(
            "UPDATE enrollments SET status = 'graduated', ended_at = $3 WHERE ended_at IS NULL \
             AND student_id IN (SELECT id FROM students WHERE school_id = $1 AND grade = $2 AND status = 'enrolled')"
        ).bind(school_id).bind(g.code()).bind(now).execute(&mut *c).await?;
        sqlx::query(
            "UPDATE students SET status = 'graduated', school_id = NULL, class_id = NULL, version = version + 1, \
             updated_at = $3 WHERE school_id = $1 AND grade = $2 AND status = 'enrolled'"
        ).bind(school_id).bind(g.code()).bind(now).execute(&mut *c).await.map(|r| r.rows_affected())?
    });
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Grade {
        Grade::parse(s).unwrap()
    }

    #[test]
    fn the_next_grade_is_the_next_one_the_school_teaches() {
        let primary: Vec<Grade> = ["11", "12", "13", "14", "15", "16"].map(g).to_vec();
        assert_eq!(next_grade(&primary, g("13")), Some(g("14")));
        assert_eq!(next_grade(&primary, g("16")), None);
        let nine: Vec<Grade> = ["11", "12", "13", "14", "15", "16", "21", "22", "23"]
            .map(g)
            .to_vec();
        assert_eq!(next_grade(&nine, g("16")), Some(g("21")));
        assert_eq!(next_grade(&nine, g("23")), None);
    }

    #[test]
    fn class_names_follow_the_grade() {
        assert_eq!(
            promoted_class_name("三年级（1）班", g("13"), g("14")),
            "四年级（1）班"
        );
        assert_eq!(
            promoted_class_name("六年级（2）班", g("16"), g("21")),
            "初一（2）班"
        );
        assert_eq!(promoted_class_name("火箭班", g("21"), g("22")), "火箭班");
    }
}
