//! 统计 → 转学统计: `GET /statistics?from=&to=&kind=&region=` (tables and SVG charts) and
//! `GET /statistics/export.xlsx` with the same filters.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use xueji_app::statistics::{Outcomes, Stats, StatsQuery};
use xueji_domain::{Error, ErrorCode};

use super::chart::{Chart, bar_chart, fmt_value};
use super::{Crumb, Names, Opt, Pairs, own_region, region_crumbs};
use crate::AppState;
use crate::pages::{Layout, PageResult, last_value, query_string, status_of, user_error};
use crate::session::WebUser;

const BLUE: &str = "#1f4e8c";
const ORANGE: &str = "#e67e00";
const LIGHT_BLUE: &str = "#7fa6d8";

/// The filters as typed.
#[derive(Default)]
pub struct Filters {
    pub from: String,
    pub to: String,
    pub kind: String,
    pub region: String,
    pub kinds: Vec<Opt>,
    pub error: String,
    pub error_field: String,
}

impl Filters {
    fn read(pairs: &Pairs) -> Self {
        let v = |k: &str| last_value(pairs, k);
        let kind = v("kind");
        Filters {
            kinds: vec![
                Opt::new("", "全部", &kind),
                Opt::new("cross_province", "跨省转学", &kind),
                Opt::new("intra_province", "省内转学", &kind),
            ],
            from: v("from"),
            to: v("to"),
            region: v("region"),
            kind,
            ..Default::default()
        }
    }

    /// The query for the use case; a malformed date or region names its field.
    fn query(&self) -> Result<StatsQuery, Error> {
        let date = |s: &str, field: &'static str| -> Result<Option<NaiveDate>, Error> {
            if s.is_empty() {
                Ok(None)
            } else {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| Error::validation(field, "日期格式应为 2026-09-01"))
            }
        };
        let region = super::parse_region(&self.region)?;
        Ok(StatsQuery {
            from: date(&self.from, "from")?,
            to: date(&self.to, "to")?,
            region,
            kind: (!self.kind.is_empty()).then(|| self.kind.clone()),
        })
    }

    /// The filters as query pairs, `region` replaced by `region` (None: dropped).
    fn pairs<'a>(&'a self, region: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("kind", self.kind.as_str()),
        ];
        if let Some(r) = region {
            v.push(("region", r));
        }
        v
    }
}

/// One side's outcomes as table cells.
pub struct OutcomeCells {
    pub total: i64,
    pub cross: i64,
    pub intra: i64,
    pub approved: i64,
    pub rejected: i64,
    pub withdrawn: i64,
    pub closed: i64,
    pub in_progress: i64,
}

impl From<&Outcomes> for OutcomeCells {
    fn from(o: &Outcomes) -> Self {
        OutcomeCells {
            total: o.total,
            cross: o.cross_province,
            intra: o.intra_province,
            approved: o.approved,
            rejected: o.rejected,
            withdrawn: o.withdrawn,
            closed: o.closed,
            in_progress: o.in_progress,
        }
    }
}

pub struct RegionRow {
    pub code: String,
    pub name: String,
    pub href: Option<String>,
    pub cells_in: OutcomeCells,
    pub cells_out: OutcomeCells,
}

impl RegionRow {
    pub fn sides(&self) -> [&OutcomeCells; 2] {
        [&self.cells_in, &self.cells_out]
    }
}

pub struct DurationRow {
    pub label: String,
    pub decided: i64,
    pub median: String,
    pub p90: String,
    pub max: i64,
}

pub struct ReasonRow {
    pub opinion: String,
    pub count: i64,
}

pub struct StatsView {
    pub region_name: String,
    pub period: String,
    pub regions: Vec<RegionRow>,
    pub total_in: OutcomeCells,
    pub total_out: OutcomeCells,
    pub steps: Vec<DurationRow>,
    pub authorities: Vec<DurationRow>,
    pub reasons: Vec<ReasonRow>,
    pub flow_chart: Chart,
    pub step_chart: Chart,
}

impl StatsView {
    pub fn sides(&self) -> [&OutcomeCells; 2] {
        [&self.total_in, &self.total_out]
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "statistics.html")]
pub struct StatisticsPage {
    layout: Layout,
    f: Filters,
    crumbs: Vec<Crumb>,
    stats: Option<StatsView>,
    export_href: String,
}

fn durations(rows: &[xueji_app::statistics::DurationStats]) -> Vec<DurationRow> {
    rows.iter()
        .map(|d| DurationRow {
            label: d.label.clone(),
            decided: d.decided,
            median: fmt_value(d.median_days),
            p90: fmt_value(d.p90_days),
            max: d.max_days,
        })
        .collect()
}

fn view(st: &Stats, f: &Filters) -> StatsView {
    let regions = st
        .by_region
        .iter()
        .map(|r| RegionRow {
            href: (Some(&r.code) != st.region.as_ref())
                .then(|| format!("/statistics{}", query_string(&f.pairs(Some(&r.code))))),
            code: r.code.clone(),
            name: r.name.clone(),
            cells_in: (&r.transfers_in).into(),
            cells_out: (&r.transfers_out).into(),
        })
        .collect();
    let flow_rows: Vec<(String, Vec<f64>)> = st
        .by_region
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                vec![r.transfers_in.total as f64, r.transfers_out.total as f64],
            )
        })
        .collect();
    let step_rows: Vec<(String, Vec<f64>)> = st
        .by_step
        .iter()
        .map(|d| (d.label.clone(), vec![d.median_days, d.p90_days]))
        .collect();
    StatsView {
        region_name: st.region_name.clone(),
        period: format!(
            "{} 至 {}",
            st.from.format("%Y-%m-%d"),
            st.to.format("%Y-%m-%d")
        ),
        regions,
        total_in: (&st.totals_in).into(),
        total_out: (&st.totals_out).into(),
        steps: durations(&st.by_step),
        authorities: durations(&st.by_authority),
        reasons: st
            .refusal_reasons
            .iter()
            .map(|r| ReasonRow {
                opinion: r.opinion.clone(),
                count: r.count,
            })
            .collect(),
        flow_chart: bar_chart(
            format!("{}各地区转入、转出件数", st.region_name),
            "件",
            true,
            &[("转入", BLUE), ("转出", ORANGE)],
            &flow_rows,
        ),
        step_chart: bar_chart(
            "各审核环节用时（工作日）",
            "工作日",
            false,
            &[("中位数", LIGHT_BLUE), ("90%分位", ORANGE)],
            &step_rows,
        ),
    }
}

pub async fn page(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let layout = Layout::new(&s.app, &u, "转学统计", "/statistics").await;
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let mut f = Filters::read(&pairs);
    let result = match f.query() {
        Ok(q) => s.app.statistics(&u.user, &q).await.map_err(user_error),
        Err(e) => Err(e),
    };
    let (stats, status, shown_region) = match result {
        Ok(st) => {
            let v = view(&st, &f);
            // The period the use case chose is shown in the filters.
            if f.from.is_empty() {
                f.from = st.from.format("%Y-%m-%d").to_string();
            }
            if f.to.is_empty() {
                f.to = st.to.format("%Y-%m-%d").to_string();
            }
            (Some(v), StatusCode::OK, st.region.clone())
        }
        Err(e) if matches!(e.code, ErrorCode::Internal | ErrorCode::Forbidden) => {
            return Err(layout.fail(e));
        }
        Err(e) => {
            let status = status_of(&e);
            f.error_field = e.field.unwrap_or("").to_string();
            f.error = e.message;
            (None, status, None)
        }
    };
    let own = own_region(&u);
    let mut names = Names::new(&s.app);
    let keep = f.pairs(None);
    let crumbs = region_crumbs(
        &mut names,
        own.as_deref(),
        shown_region.as_deref().or(own.as_deref()),
        "/statistics",
        &keep,
    )
    .await;
    let export_href = format!(
        "/statistics/export.xlsx{}",
        query_string(
            &f.pairs(
                shown_region
                    .as_deref()
                    .filter(|r| Some(*r) != own.as_deref())
            )
        )
    );
    let page = StatisticsPage {
        layout,
        f,
        crumbs,
        stats,
        export_href,
    };
    Ok((status, page).into_response())
}

pub async fn export(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Pairs>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    let f = Filters::read(&pairs);
    let result = match f.query() {
        Ok(q) => s
            .app
            .export_statistics(&u.user, &q)
            .await
            .map_err(user_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(bytes) => Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"statistics.xlsx\"; filename*=UTF-8''%E8%BD%AC%E5%AD%A6%E7%BB%9F%E8%AE%A1.xlsx",
                ),
            ],
            bytes,
        )
            .into_response()),
        Err(e) => {
            let layout = Layout::new(&s.app, &u, "转学统计", "/statistics").await;
            Err(layout.fail(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Pairs {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_name_the_bad_field() {
        let f = Filters::read(&pairs(&[("from", "2026/09/01")]));
        assert_eq!(f.query().unwrap_err().field, Some("from"));
        let f = Filters::read(&pairs(&[("region", "4101")]));
        assert_eq!(f.query().unwrap_err().field, Some("region"));
        let f = Filters::read(&pairs(&[
            ("from", "2026-09-01"),
            ("kind", "cross_province"),
        ]));
        let q = f.query().unwrap();
        assert_eq!(q.from, NaiveDate::from_ymd_opt(2026, 9, 1));
        assert_eq!(q.kind.as_deref(), Some("cross_province"));
        assert!(f.kinds[1].selected);
    }

    #[test]
    fn drill_down_links_keep_the_filters() {
        let f = Filters::read(&pairs(&[("from", "2026-09-01"), ("region", "410000")]));
        assert_eq!(
            query_string(&f.pairs(Some("410100"))),
            "?from=2026-09-01&region=410100"
        );
    }
}
