//! `page` / `per_page` of every list (API.md: default 50, at most 500).

use serde::Deserialize;
use xueji_domain::Error;

#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Rows per page, 1–500 (default 50).
    pub per_page: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: 50,
        }
    }
}

impl Page {
    pub fn from_query(q: PageQuery) -> Result<Self, Error> {
        let page = q.page.unwrap_or(1);
        let per_page = q.per_page.unwrap_or(50);
        if page < 1 {
            return Err(Error::validation("page", "页码应从1开始"));
        }
        if !(1..=500).contains(&per_page) {
            return Err(Error::validation("per_page", "每页条数应在1到500之间"));
        }
        Ok(Self { page, per_page })
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

/// One page of a list and the total count (sent as `X-Total-Count`).
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
}
