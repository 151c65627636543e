//! The national hierarchy as users see it: regions, authorities, schools, classes — each list
//! scoped to the caller's jurisdiction in SQL.

use serde::Serialize;
use xueji_domain::Error;
use xueji_domain::ids::RegionCode;

use crate::auth::{CurrentUser, Scope};
use crate::error::AppResult;
use crate::paging::{Page, Paged};
use crate::{App, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RegionOut {
    /// 6-digit GB/T 2260 code.
    pub code: String,
    pub name: String,
    /// `province`, `city` or `county`.
    pub level: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchoolOut {
    /// 10-digit 学校标识码.
    pub code: String,
    pub name: String,
    /// Region code of the school's county (or city).
    pub region: String,
    /// Region code of the school's 学籍主管部门; its demo account is `edu` + this code.
    pub authority: String,
    pub authority_name: String,
    /// 小学 / 初级中学 / 九年一贯制学校 …
    pub school_type: String,
    /// Grade codes the school teaches (`11`–`16`, `21`–`24`, `31`–`33`).
    pub grades: Vec<String>,
    #[serde(skip)]
    pub id: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SchoolRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub region_code: String,
    pub authority_region: String,
    pub authority_name: String,
    pub school_type: String,
    pub grades: String,
}

impl From<SchoolRow> for SchoolOut {
    fn from(r: SchoolRow) -> Self {
        SchoolOut {
            id: r.id,
            code: r.code,
            name: r.name,
            region: r.region_code,
            authority: r.authority_region,
            authority_name: r.authority_name,
            school_type: r.school_type,
            grades: r
                .grades
                .split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

pub(crate) const SCHOOL_SELECT: &str = "SELECT s.id, s.code, s.name, s.region_code, s.authority_region, \
    a.name AS authority_name, s.school_type, s.grades FROM schools s \
    JOIN authorities a ON a.region_code = s.authority_region";

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ClassOut {
    pub id: i64,
    pub grade: String,
    pub name: String,
    pub capacity: i64,
    /// Students enrolled in the class now.
    pub enrolled: i64,
}

impl App {
    /// Children of a region (no parent: the 32 provincial units). Reference data: every signed-in
    /// user may read it.
    pub async fn regions(&self, parent: Option<&str>) -> AppResult<Vec<RegionOut>> {
        let rows = match parent {
            None => on_pool!(self.db.read(), p => sqlx::query_as(
                "SELECT code, name, level FROM regions WHERE parent_code IS NULL ORDER BY code"
            ).fetch_all(p).await)?,
            Some(code) => {
                let code = RegionCode::parse(code).map_err(|e| e.at("parent"))?;
                on_pool!(self.db.read(), p => sqlx::query_as(
                    "SELECT code, name, level FROM regions WHERE parent_code = $1 ORDER BY code"
                ).bind(code.as_str()).fetch_all(p).await)?
            }
        };
        Ok(rows)
    }

    pub async fn region(&self, code: &str) -> AppResult<Option<RegionOut>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT code, name, level FROM regions WHERE code = $1"
        ).bind(code).fetch_optional(p).await)?)
    }

    /// Schools within the caller's view, optionally within a region subtree.
    pub async fn schools(
        &self,
        user: &CurrentUser,
        region: Option<&str>,
        page: Page,
    ) -> AppResult<Paged<SchoolOut>> {
        let filter = match region {
            Some(r) => Some(RegionCode::parse(r).map_err(|e| e.at("region"))?),
            None => None,
        };
        let scope = user.scope();
        let Some((lo, hi)) = scope.region_range(filter.as_ref()) else {
            return Ok(Paged {
                items: vec![],
                total: 0,
            });
        };
        let school_id = match &scope {
            Scope::School { id, .. } => Some(*id),
            _ => None,
        };
        let where_ =
            "WHERE s.region_code >= $1 AND s.region_code < $2 AND ($3 IS NULL OR s.id = $3)";
        let count_sql = format!("SELECT COUNT(*) FROM schools s {where_}");
        let list_sql = format!("{SCHOOL_SELECT} {where_} ORDER BY s.code LIMIT $4 OFFSET $5");
        let total: i64 = on_pool!(self.db.read(), p => sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))
            .bind(&lo).bind(&hi).bind(school_id).fetch_one(p).await)?;
        let rows: Vec<SchoolRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(list_sql.as_str()))
            .bind(&lo).bind(&hi).bind(school_id).bind(page.per_page).bind(page.offset())
            .fetch_all(p).await)?;
        Ok(Paged {
            items: rows.into_iter().map(Into::into).collect(),
            total,
        })
    }

    /// Any school by code, without scope: for internal lookups (never returned to a caller that
    /// is not allowed to see it).
    pub(crate) async fn school_unscoped(&self, code: &str) -> AppResult<Option<SchoolOut>> {
        let sql = format!("{SCHOOL_SELECT} WHERE s.code = $1");
        let row: Option<SchoolRow> = on_pool!(self.db.read(), p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(code).fetch_optional(p).await)?;
        Ok(row.map(Into::into))
    }

    /// One school the caller may see; `not_found` otherwise (never revealing that it exists).
    pub async fn school(&self, user: &CurrentUser, code: &str) -> AppResult<SchoolOut> {
        match self.school_unscoped(code.trim()).await? {
            Some(s) if user.scope().covers_school(s.id, &s.region) => Ok(s),
            _ => Err(Error::not_found("该学校").into()),
        }
    }

    pub async fn classes(&self, user: &CurrentUser, school_code: &str) -> AppResult<Vec<ClassOut>> {
        let school = self.school(user, school_code).await?;
        self.classes_of(school.id).await
    }

    pub(crate) async fn classes_of(&self, school_id: i64) -> AppResult<Vec<ClassOut>> {
        Ok(on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT c.id, c.grade, c.name, c.capacity, \
             (SELECT COUNT(*) FROM students st WHERE st.class_id = c.id AND st.school_id = c.school_id) AS enrolled \
             FROM classes c WHERE c.school_id = $1 ORDER BY c.grade, c.name"
        ).bind(school_id).fetch_all(p).await)?)
    }
}
