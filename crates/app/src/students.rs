//! Student records as users read them: lists scoped to the caller's jurisdiction, one record
//! with its history. Identity numbers leave this module masked unless the caller's school holds
//! the student now.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use xueji_domain::Error;
use xueji_domain::ids::{Gender, Grade, mask_document};

use crate::auth::{CurrentUser, Scope};
use crate::error::{AppError, AppResult};
use crate::paging::{Page, Paged};
use crate::{App, on_pool};

/// Student lifecycle status (学籍状态) as the API names it.
pub fn status_label_zh(status: &str) -> &'static str {
    match status {
        "enrolled" => "在籍",
        "suspended" => "休学",
        "transferred_out" => "已转出",
        "graduated" => "毕业",
        "dropped_out" => "辍学",
        "withdrawn" => "退学",
        "deceased" => "死亡",
        "abroad" => "出境学习",
        "deleted" => "已删除",
        _ => "其他",
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudentSummary {
    pub student_no: String,
    pub name: String,
    /// `male` or `female`.
    pub gender: String,
    pub birth_date: NaiveDate,
    /// `410105********123X`.
    pub id_number_masked: String,
    pub grade: Option<String>,
    pub class_id: Option<i64>,
    pub class_name: Option<String>,
    /// `enrolled`, `suspended`, `transferred_out`, `graduated`, …
    pub status: String,
    /// The open business (在办业务) locking the student, e.g. `transfer`, or null.
    pub open_business: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct StudentRow {
    pub(crate) id: i64,
    pub(crate) student_no: String,
    name: String,
    gender: String,
    birth_date: NaiveDate,
    id_type: String,
    id_number: String,
    ethnicity: String,
    ethnicity_name: String,
    status: String,
    pub(crate) school_id: Option<i64>,
    school_code: Option<String>,
    school_name: Option<String>,
    region_code: Option<String>,
    grade: Option<String>,
    class_id: Option<i64>,
    class_name: Option<String>,
    open_business: Option<String>,
    created_at: DateTime<Utc>,
}

const STUDENT_SELECT: &str = "SELECT st.id, st.student_no, st.name, st.gender, st.birth_date, st.id_type, \
    st.id_number, st.ethnicity, e.name AS ethnicity_name, st.status, st.school_id, sc.code AS school_code, \
    sc.name AS school_name, st.region_code, st.grade, st.class_id, c.name AS class_name, \
    ob.kind AS open_business, st.created_at \
    FROM students st JOIN ethnicities e ON e.code = st.ethnicity \
    LEFT JOIN schools sc ON sc.id = st.school_id LEFT JOIN classes c ON c.id = st.class_id \
    LEFT JOIN open_businesses ob ON ob.student_id = st.id";

fn gender_api(code: &str) -> String {
    match Gender::parse(code) {
        Some(Gender::Male) => "male".into(),
        Some(Gender::Female) => "female".into(),
        None => "unknown".into(),
    }
}

impl StudentRow {
    fn summary(self) -> StudentSummary {
        StudentSummary {
            id_number_masked: mask_document(&self.id_number),
            student_no: self.student_no,
            name: self.name,
            gender: gender_api(&self.gender),
            birth_date: self.birth_date,
            grade: self.grade,
            class_id: self.class_id,
            class_name: self.class_name,
            status: self.status,
            open_business: self.open_business,
        }
    }
}

/// Filters of the student list (学生管理).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct StudentFilter {
    /// 学校标识码 of the school (required for school-level lists; authorities may omit it).
    pub school: Option<String>,
    /// Region subtree (authorities).
    pub region: Option<String>,
    pub grade: Option<String>,
    pub class_id: Option<i64>,
    /// Name prefix or exact student number.
    pub q: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudentDetail {
    #[serde(flatten)]
    pub summary: StudentSummary,
    /// Identity document type code (1 = 居民身份证).
    pub id_type: String,
    /// The whole number: only for the school that holds the student now; otherwise null.
    pub id_number: Option<String>,
    pub ethnicity: String,
    pub ethnicity_name: String,
    pub school: Option<String>,
    pub school_name: Option<String>,
    pub grade_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Enrollment history, newest first.
    pub enrollments: Vec<EnrollmentOut>,
    /// Every student number held (L → G keeps the past).
    pub numbers: Vec<NumberOut>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EnrollmentOut {
    pub school: String,
    pub school_name: String,
    pub grade: String,
    pub class_name: Option<String>,
    /// `active` (在籍) or `transferred_out` (已转出, read-only at the old school).
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub transfer_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NumberOut {
    pub student_no: String,
    pub kind: String,
    pub assigned_at: DateTime<Utc>,
    pub replaced_at: Option<DateTime<Utc>>,
}

/// The student list's statements and their arguments (text, or integers at the given places;
/// the page's LIMIT and OFFSET follow).
struct StudentQuery {
    binds: Vec<Option<String>>,
    ints: Vec<(usize, i64)>,
    statements: StudentStatements,
}

enum StudentStatements {
    Plain {
        count: String,
        list: String,
    },
    /// `q` given: the one student with that number, then the names with that prefix.
    ByNumberOrName {
        exact: String,
        count: String,
        list: String,
    },
}

impl App {
    /// The statements of the student list for these filters; `None`: nothing is in scope.
    async fn student_query(
        &self,
        user: &CurrentUser,
        filter: &StudentFilter,
    ) -> AppResult<Option<StudentQuery>> {
        let scope = user.scope();
        let mut school_id: Option<i64> = None;
        if let Some(code) = filter.school.as_deref().filter(|s| !s.trim().is_empty()) {
            school_id = Some(self.school(user, code).await?.id);
        }
        if let Scope::School { id, .. } = scope {
            school_id = Some(id);
        }
        let region = match filter.region.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(r) => Some(xueji_domain::ids::RegionCode::parse(r).map_err(|e| e.at("region"))?),
            None => None,
        };
        let Some((lo, hi)) = scope.region_range(region.as_ref()) else {
            return Ok(None);
        };
        let grade = match filter.grade.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(g) => Some(Grade::parse(g)?.code()),
            None => None,
        };
        let q = filter
            .q
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_uppercase);
        // Built from the filters given, so that each shape uses its index: a school's roster
        // walks `students_school` in the order shown (grade, class, id); a region's list walks
        // `students_region` in its own order; a name prefix uses `students_name`.
        let mut conds = vec![
            "st.school_id IS NOT NULL".to_string(),
            "st.region_code >= $1 AND st.region_code < $2".to_string(),
        ];
        let mut binds: Vec<Option<String>> = vec![Some(lo), Some(hi)];
        let mut ints: Vec<(usize, i64)> = vec![];
        let mut next = 3;
        let mut arg = |binds: &mut Vec<Option<String>>, v: Option<String>| {
            binds.push(v);
            let n = next;
            next += 1;
            format!("${n}")
        };
        if let Some(id) = school_id {
            let p = arg(&mut binds, None);
            ints.push((binds.len() - 1, id));
            conds.push(format!("st.school_id = {p}"));
        }
        if let Some(g) = &grade {
            let p = arg(&mut binds, Some(g.clone()));
            conds.push(format!("st.grade = {p}"));
        }
        if let Some(c) = filter.class_id {
            let p = arg(&mut binds, None);
            ints.push((binds.len() - 1, c));
            conds.push(format!("st.class_id = {p}"));
        }
        // Names in code-point order, as the name index holds them.
        let collate = self.db.backend().code_point_order();
        // A name prefix or an exact number: `number OR name` makes SQLite read every row the
        // name index finds (15 s for a surname over a 10-million province), so the two are
        // asked apart: the one student with that number first, then the names in the name
        // index's own order (name, region, school, id), counted from that index alone.
        let q_parts = q.as_ref().map(|q| {
            let exact = arg(&mut binds, Some(q.clone()));
            let like = arg(&mut binds, Some(format!("{q}%")));
            // A prefix is also a range of code points, which the name index walks: SQLite
            // compares text bytewise; PostgreSQL's index is in the "C" collation (0018).
            let lo = arg(&mut binds, Some(q.clone()));
            let hi = arg(&mut binds, Some(format!("{q}\u{10FFFF}")));
            let range = format!(" AND st.name{collate} >= {lo} AND st.name{collate} < {hi}");
            (
                format!("st.student_no = {exact}"),
                format!("st.name LIKE {like}{range}"),
            )
        });
        let where_ = format!("WHERE {}", conds.join(" AND "));
        let order = if q.is_some() {
            format!("st.name{collate}, st.region_code, st.school_id, st.id")
        } else if school_id.is_some() {
            "st.grade, st.class_id, st.id".into()
        } else {
            "st.region_code, st.id".into()
        };
        let limit = next;
        let page = format!("LIMIT ${limit} OFFSET ${}", limit + 1);
        let statements = match q_parts {
            None => StudentStatements::Plain {
                count: format!("SELECT COUNT(*) FROM students st {where_}"),
                list: format!("{STUDENT_SELECT} {where_} ORDER BY {order} {page}"),
            },
            Some((exact, name)) => StudentStatements::ByNumberOrName {
                // The student with that number, when in scope and not also found by name.
                exact: format!("{STUDENT_SELECT} {where_} AND {exact} AND NOT ({name})"),
                count: format!("SELECT COUNT(*) FROM students st {where_} AND {name}"),
                list: format!("{STUDENT_SELECT} {where_} AND {name} ORDER BY {order} {page}"),
            },
        };
        Ok(Some(StudentQuery {
            binds,
            ints,
            statements,
        }))
    }

    /// Students the caller may see, filtered. A school sees its own; an authority its region
    /// subtree; the national administrator everyone. Scope is applied in SQL.
    pub async fn students(
        &self,
        user: &CurrentUser,
        filter: &StudentFilter,
        page: Page,
    ) -> AppResult<Paged<StudentSummary>> {
        let Some(StudentQuery {
            binds,
            ints,
            statements,
        }) = self.student_query(user, filter).await?
        else {
            return Ok(Paged {
                items: vec![],
                total: 0,
            });
        };
        macro_rules! bind_all {
            ($q:expr) => {{
                let mut q = $q;
                for (i, b) in binds.iter().enumerate() {
                    q = match ints.iter().find(|(at, _)| *at == i) {
                        Some((_, v)) => q.bind(*v),
                        None => q.bind(b.as_deref()),
                    };
                }
                q
            }};
        }
        let (exact_sql, count_sql, list_sql) = match &statements {
            StudentStatements::Plain { count, list } => (None, count, list),
            StudentStatements::ByNumberOrName { exact, count, list } => (Some(exact), count, list),
        };
        let by_no: Vec<StudentRow> = match exact_sql {
            Some(sql) => {
                on_pool!(self.db.read(), p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))).fetch_all(p).await)?
            }
            None => vec![],
        };
        let counted: i64 = on_pool!(self.db.read(), p => bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))).fetch_one(p).await)?;
        // The exact match (at most one) comes before the names, so the pages shift by it.
        let first = by_no.len() as i64;
        let offset = page.offset();
        let mut items: Vec<StudentSummary> = by_no
            .into_iter()
            .skip(offset.min(first) as usize)
            .take(page.per_page.max(0) as usize)
            .map(StudentRow::summary)
            .collect();
        let want = page.per_page - items.len() as i64;
        if want > 0 {
            let rows: Vec<StudentRow> = on_pool!(self.db.read(), p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(list_sql.as_str())))
                .bind(want).bind((offset - first).max(0)).fetch_all(p).await)?;
            items.extend(rows.into_iter().map(StudentRow::summary));
        }
        Ok(Paged {
            items,
            total: first + counted,
        })
    }

    /// The query plans (SQLite `EXPLAIN QUERY PLAN` details) of the student list's count and
    /// page for these filters, for the test that keeps their indexes.
    #[doc(hidden)]
    pub async fn student_query_plans(
        &self,
        user: &CurrentUser,
        filter: &StudentFilter,
    ) -> AppResult<(Vec<String>, Vec<String>)> {
        let Some(q) = self.student_query(user, filter).await? else {
            return Ok((vec![], vec![]));
        };
        let (count, list) = match &q.statements {
            StudentStatements::Plain { count, list } => (count, list),
            StudentStatements::ByNumberOrName { count, list, .. } => (count, list),
        };
        let explain = |sql: &str, page: bool| {
            let sql = format!("EXPLAIN QUERY PLAN {sql}");
            let (binds, ints) = (&q.binds, &q.ints);
            async move {
                let mut query =
                    sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(sql));
                for (i, b) in binds.iter().enumerate() {
                    query = match ints.iter().find(|(at, _)| *at == i) {
                        Some((_, v)) => query.bind(*v),
                        None => query.bind(b.clone()),
                    };
                }
                if page {
                    query = query.bind(50i64).bind(0i64);
                }
                let crate::db::Db::Sqlite { readers, .. } = &self.db else {
                    return Err(AppError::Other("plans are read on SQLite".into()));
                };
                let rows = query.fetch_all(readers).await?;
                Ok::<_, AppError>(rows.into_iter().map(|r| r.3).collect::<Vec<_>>())
            }
        };
        Ok((explain(count, false).await?, explain(list, true).await?))
    }

    /// Whether the caller may see a student: the student's current school is in scope, or a school
    /// in scope held the student before (its read-only 已转出 record).
    pub(crate) async fn may_see_student(
        &self,
        user: &CurrentUser,
        row: &StudentRow,
    ) -> AppResult<bool> {
        let scope = user.scope();
        if let (Some(sid), Some(region)) = (row.school_id, row.region_code.as_deref())
            && scope.covers_school(sid, region)
        {
            return Ok(true);
        }
        let past: Vec<(i64, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT s.id, s.region_code FROM enrollments e JOIN schools s ON s.id = e.school_id WHERE e.student_id = $1"
        ).bind(row.id).fetch_all(p).await)?;
        Ok(past
            .iter()
            .any(|(id, region)| scope.covers_school(*id, region)))
    }

    pub(crate) async fn student_row(&self, student_no: &str) -> AppResult<Option<StudentRow>> {
        let no = student_no.trim().to_uppercase();
        let sql = format!(
            "{STUDENT_SELECT} WHERE st.id = (SELECT student_id FROM student_numbers WHERE student_no = $1)"
        );
        Ok(
            on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(&no).fetch_optional(p).await)?,
        )
    }

    /// One student by any number they have held, if the caller may see them.
    pub async fn student(&self, user: &CurrentUser, student_no: &str) -> AppResult<StudentDetail> {
        // This is the most frequent read of the system (docs/performance.md, "lookup"). Every
        // statement taken from the pool costs two hand-offs to SQLite's connection thread (the
        // statement, then sqlx's ping on release), which dominated the request: the record,
        // both histories and the schools that held the student come in one statement.
        #[derive(sqlx::FromRow)]
        struct Part {
            /// 0 the student, 1 an enrollment, 2 a number.
            part: i64,
            /// The student's id; an enrollment's id (its order).
            id: i64,
            /// Student number; an enrollment's school code; a number.
            no: String,
            /// Name; an enrollment's school name; a number's kind.
            name: String,
            gender: Option<String>,
            birth_date: Option<NaiveDate>,
            id_type: Option<String>,
            id_number: Option<String>,
            ethnicity: Option<String>,
            ethnicity_name: Option<String>,
            status: Option<String>,
            school_id: Option<i64>,
            school_code: Option<String>,
            school_name: Option<String>,
            region_code: Option<String>,
            grade: Option<String>,
            class_id: Option<i64>,
            class_name: Option<String>,
            open_business: Option<String>,
            /// created_at; an enrollment's start; when a number was assigned.
            t1: DateTime<Utc>,
            t2: Option<DateTime<Utc>>,
            transfer_id: Option<i64>,
        }
        // PostgreSQL types a UNION branch by branch: every column is typed in the first or the
        // second branch, never NULL in both.
        const SQL: &str = "SELECT CAST(0 AS BIGINT) AS part, st.id, st.student_no AS no, st.name, st.gender, \
            st.birth_date, st.id_type, st.id_number, st.ethnicity, et.name AS ethnicity_name, st.status, \
            st.school_id, sc.code AS school_code, sc.name AS school_name, st.region_code, st.grade, \
            st.class_id, c.name AS class_name, ob.kind AS open_business, st.created_at AS t1, \
            NULL AS t2, NULL AS transfer_id \
            FROM students st JOIN ethnicities et ON et.code = st.ethnicity \
            LEFT JOIN schools sc ON sc.id = st.school_id LEFT JOIN classes c ON c.id = st.class_id \
            LEFT JOIN open_businesses ob ON ob.student_id = st.id \
            WHERE st.id = (SELECT student_id FROM student_numbers WHERE student_no = $1) \
            UNION ALL SELECT CAST(1 AS BIGINT), e.id, s.code, s.name, NULL, NULL, NULL, NULL, NULL, NULL, \
            e.status, s.id, NULL, NULL, s.region_code, e.grade, NULL, c.name, NULL, e.started_at, \
            e.ended_at, e.transfer_id \
            FROM enrollments e JOIN schools s ON s.id = e.school_id LEFT JOIN classes c ON c.id = e.class_id \
            WHERE e.student_id = (SELECT student_id FROM student_numbers WHERE student_no = $1) \
            UNION ALL SELECT CAST(2 AS BIGINT), CAST(0 AS BIGINT), n.student_no, n.kind, NULL, NULL, NULL, \
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, n.assigned_at, \
            n.replaced_at, NULL \
            FROM student_numbers n \
            WHERE n.student_id = (SELECT student_id FROM student_numbers WHERE student_no = $1)";
        let no = student_no.trim().to_uppercase();
        let parts: Vec<Part> =
            on_pool!(self.db.read(), p => sqlx::query_as(SQL).bind(&no).fetch_all(p).await)?;
        let scope = user.scope();
        let mut row = None;
        let mut held_in_scope = false;
        let mut enrollments = vec![];
        let mut numbers = vec![];
        for h in parts {
            match h.part {
                0 => {
                    row = Some(StudentRow {
                        id: h.id,
                        student_no: h.no,
                        name: h.name,
                        gender: h.gender.unwrap_or_default(),
                        birth_date: h.birth_date.unwrap_or_default(),
                        id_type: h.id_type.unwrap_or_default(),
                        id_number: h.id_number.unwrap_or_default(),
                        ethnicity: h.ethnicity.unwrap_or_default(),
                        ethnicity_name: h.ethnicity_name.unwrap_or_default(),
                        status: h.status.unwrap_or_default(),
                        school_id: h.school_id,
                        school_code: h.school_code,
                        school_name: h.school_name,
                        region_code: h.region_code,
                        grade: h.grade,
                        class_id: h.class_id,
                        class_name: h.class_name,
                        open_business: h.open_business,
                        created_at: h.t1,
                    })
                }
                1 => {
                    // As `may_see_student`: a school in scope that held the student.
                    if let (Some(id), Some(region)) = (h.school_id, h.region_code.as_deref()) {
                        held_in_scope |= scope.covers_school(id, region);
                    }
                    enrollments.push((
                        h.id,
                        EnrollmentOut {
                            school: h.no,
                            school_name: h.name,
                            grade: h.grade.unwrap_or_default(),
                            class_name: h.class_name,
                            status: h.status.unwrap_or_default(),
                            started_at: h.t1,
                            ended_at: h.t2,
                            transfer_id: h.transfer_id,
                        },
                    ))
                }
                _ => numbers.push(NumberOut {
                    student_no: h.no,
                    kind: h.name,
                    assigned_at: h.t1,
                    replaced_at: h.t2,
                }),
            }
        }
        let Some(row) = row else {
            return Err(Error::not_found("该学生").into());
        };
        let current_in_scope = matches!((row.school_id, row.region_code.as_deref()),
            (Some(sid), Some(region)) if scope.covers_school(sid, region));
        if !current_in_scope && !held_in_scope {
            return Err(Error::not_found("该学生").into());
        }
        let holds_now = matches!(scope, Scope::School { id, .. } if Some(id) == row.school_id);
        // Newest enrollment first; numbers in the order assigned.
        enrollments.sort_by_key(|(ord, _)| std::cmp::Reverse(*ord));
        let enrollments: Vec<EnrollmentOut> = enrollments.into_iter().map(|(_, e)| e).collect();
        numbers.sort_by_key(|n| n.assigned_at);
        let grade_name = row
            .grade
            .as_deref()
            .and_then(|g| Grade::parse(g).ok())
            .map(|g| g.label_zh().to_string());
        Ok(StudentDetail {
            id_type: row.id_type.clone(),
            id_number: holds_now.then(|| row.id_number.clone()),
            ethnicity: row.ethnicity.clone(),
            ethnicity_name: row.ethnicity_name.clone(),
            school: row.school_code.clone(),
            school_name: row.school_name.clone(),
            grade_name,
            created_at: row.created_at,
            enrollments,
            numbers,
            summary: row.summary(),
        })
    }
}
