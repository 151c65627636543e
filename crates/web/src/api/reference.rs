//! Reference data and students: regions, schools, classes, students.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use xueji_app::paging::{Page, PageQuery};
use xueji_app::reference::{ClassOut, RegionOut, SchoolOut};
use xueji_app::students::{StudentDetail, StudentFilter, StudentSummary};

use super::paged;
use crate::AppState;
use crate::error::{ApiPath, ApiQuery, ApiResult, Problem};
use crate::session::ApiUser;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RegionQuery {
    /// Parent region code; absent → the 32 provincial units.
    pub parent: Option<String>,
}

/// Regions (GB/T 2260): the children of `parent`, or the provinces.
#[utoipa::path(get, path = "/api/v1/regions", tag = "reference", params(RegionQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<RegionOut>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn regions(
    State(s): State<AppState>,
    ApiUser(_user): ApiUser,
    ApiQuery(q): ApiQuery<RegionQuery>,
) -> ApiResult<Json<Vec<RegionOut>>> {
    Ok(Json(
        s.app
            .regions(q.parent.as_deref().filter(|p| !p.is_empty()))
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SchoolQuery {
    /// Region code; matches its whole subtree.
    pub region: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// Schools within the caller's view.
#[utoipa::path(get, path = "/api/v1/schools", tag = "reference", params(SchoolQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<SchoolOut>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn schools(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<SchoolQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    Ok(paged(
        s.app
            .schools(&u, q.region.as_deref().filter(|r| !r.is_empty()), page)
            .await?,
    ))
}

/// Classes of a school the caller may see.
#[utoipa::path(get, path = "/api/v1/schools/{code}/classes", tag = "reference", security(("bearer" = [])),
    params(("code" = String, Path, description = "学校标识码")),
    responses((status = 200, body = Vec<ClassOut>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn classes(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(code): ApiPath<String>,
) -> ApiResult<Json<Vec<ClassOut>>> {
    Ok(Json(s.app.classes(&u, &code).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StudentQuery {
    /// 学校标识码.
    pub school: Option<String>,
    /// Region subtree (authorities).
    pub region: Option<String>,
    pub grade: Option<String>,
    pub class_id: Option<i64>,
    /// Name prefix or exact student number.
    pub q: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// Enrolled students the caller may see; identity numbers masked.
#[utoipa::path(get, path = "/api/v1/students", tag = "students", params(StudentQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<StudentSummary>), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn students(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiQuery(q): ApiQuery<StudentQuery>,
) -> ApiResult<Response> {
    let page = Page::from_query(PageQuery {
        page: q.page,
        per_page: q.per_page,
    })?;
    let filter = StudentFilter {
        school: q.school,
        region: q.region,
        grade: q.grade,
        class_id: q.class_id,
        q: q.q,
    };
    Ok(paged(s.app.students(&u, &filter, page).await?))
}

/// One student by any student number they have held, if the caller may see them.
#[utoipa::path(get, path = "/api/v1/students/{student_no}", tag = "students", security(("bearer" = [])),
    params(("student_no" = String, Path, description = "学籍号")),
    responses((status = 200, body = StudentDetail), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn student(
    State(s): State<AppState>,
    ApiUser(u): ApiUser,
    ApiPath(no): ApiPath<String>,
) -> ApiResult<Json<StudentDetail>> {
    Ok(Json(s.app.student(&u, &no).await?))
}
