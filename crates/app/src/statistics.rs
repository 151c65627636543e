//! 统计: transfers in and out per region and period, by kind and outcome; working days taken per
//! step and per authority (median, 90th percentile); refusal reasons. Scoped to the caller's
//! region; exportable to .xlsx.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use rust_xlsxwriter::{Format, Workbook};
use serde::{Deserialize, Serialize};
use xueji_domain::Error;
use xueji_domain::ids::{RegionCode, RegionLevel};

use crate::audit::{self, AuditEvent};
use crate::auth::{CurrentUser, Scope};
use crate::error::{AppError, AppResult};
use crate::{App, on_pool};

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct StatsQuery {
    /// First day (filed on or after), default: 1 September of the current school year.
    pub from: Option<NaiveDate>,
    /// Last day (filed on or before), default: today.
    pub to: Option<NaiveDate>,
    /// A region inside the caller's (drill-down).
    pub region: Option<String>,
    /// `cross_province` or `intra_province`.
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Outcomes {
    pub total: i64,
    pub cross_province: i64,
    pub intra_province: i64,
    /// Approved, pulled or completed.
    pub approved: i64,
    pub rejected: i64,
    pub withdrawn: i64,
    pub closed: i64,
    pub in_progress: i64,
}

impl Outcomes {
    fn add(&mut self, kind: &str, status: &str) {
        self.total += 1;
        if kind == "cross_province" {
            self.cross_province += 1;
        } else {
            self.intra_province += 1;
        }
        match status {
            "approved" | "file_pulled" | "paper_sent" | "completed" => self.approved += 1,
            "rejected" => self.rejected += 1,
            "withdrawn" => self.withdrawn += 1,
            "closed" => self.closed += 1,
            _ => self.in_progress += 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegionStats {
    pub code: String,
    pub name: String,
    /// Into the region's schools.
    pub transfers_in: Outcomes,
    /// Out of the region's schools.
    pub transfers_out: Outcomes,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DurationStats {
    /// Step word (`in_school`, …) or authority region code.
    pub key: String,
    pub label: String,
    pub decided: i64,
    /// Working days from the day the step began to its decision, counting the first day.
    pub median_days: f64,
    pub p90_days: f64,
    pub max_days: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReasonCount {
    pub opinion: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub region: Option<String>,
    pub region_name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals_in: Outcomes,
    pub totals_out: Outcomes,
    pub by_region: Vec<RegionStats>,
    pub by_step: Vec<DurationStats>,
    pub by_authority: Vec<DurationStats>,
    pub refusal_reasons: Vec<ReasonCount>,
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Linear interpolation between closest ranks.
    let pos = (sorted.len() as f64 - 1.0) * p;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] as f64 + (sorted[hi] - sorted[lo]) as f64 * (pos - lo as f64)
}

fn step_label(code: &str) -> &'static str {
    match code {
        "in_school" => "转入学校审核",
        "in_authority" => "转入学籍主管部门审核",
        "out_school" => "转出学校审核",
        "out_authority" => "转出学籍主管部门审核",
        "shared_authority" => "学籍主管部门审核（同一部门）",
        c if c.ends_with("leader") => "主管部门领导确认",
        _ => "审核",
    }
}

impl App {
    pub async fn statistics(&self, user: &CurrentUser, q: &StatsQuery) -> AppResult<Stats> {
        let own = match user.scope() {
            Scope::National => None,
            Scope::Region(r) => Some(r),
            Scope::School { .. } => return Err(Error::forbidden("统计面向学籍主管部门").into()),
        };
        let region = match q.region.as_deref().filter(|r| !r.is_empty()) {
            None => own,
            Some(r) => {
                let r = RegionCode::parse(r).map_err(|e| e.at("region"))?;
                if let Some(o) = &own
                    && !o.contains(r.as_str())
                {
                    return Err(Error::not_found("该地区").into());
                }
                Some(r)
            }
        };
        let kind = match q.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(k @ ("cross_province" | "intra_province")) => Some(k.to_string()),
            Some(_) => {
                return Err(
                    Error::validation("kind", "类型应为 cross_province 或 intra_province").into(),
                );
            }
            None => None,
        };
        let today = self.clock.today();
        let school_year_start = {
            let y = if chrono::Datelike::month(&today) >= 9 {
                chrono::Datelike::year(&today)
            } else {
                chrono::Datelike::year(&today) - 1
            };
            NaiveDate::from_ymd_opt(y, 9, 1).expect("date")
        };
        let from = q.from.unwrap_or(school_year_start);
        let to = q.to.unwrap_or(today);
        if to < from {
            return Err(Error::validation("to", "结束日期不能早于开始日期").into());
        }
        let cst = FixedOffset::east_opt(8 * 3600).expect("offset");
        let from_ts = from.and_hms_opt(0, 0, 0).expect("time").and_utc() - Duration::hours(8);
        let to_ts = to
            .succ_opt()
            .unwrap_or(to)
            .and_hms_opt(0, 0, 0)
            .expect("time")
            .and_utc()
            - Duration::hours(8);
        let (lo, hi) = region
            .as_ref()
            .map(|r| r.subtree_range())
            .unwrap_or(("000000".into(), "999999".into()));

        let rows: Vec<(i64, String, String, String, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT id, kind, status, from_region, to_region FROM transfers \
             WHERE created_at >= $1 AND created_at < $2 AND ($3 IS NULL OR kind = $3) \
             AND ((to_region >= $4 AND to_region < $5) OR (from_region >= $4 AND from_region < $5))"
        ).bind(from_ts).bind(to_ts).bind(&kind).bind(&lo).bind(&hi).fetch_all(p).await)?;
        let child_of = |code: &str| -> String {
            match region.as_ref().map(|r| r.level()) {
                None => format!("{}0000", &code[0..2]),
                Some(RegionLevel::Province) => format!("{}00", &code[0..4]),
                Some(_) => code.to_string(),
            }
        };
        let inside = |code: &str| code >= lo.as_str() && code < hi.as_str();
        let mut totals_in = Outcomes::default();
        let mut totals_out = Outcomes::default();
        let mut per: BTreeMap<String, (Outcomes, Outcomes)> = BTreeMap::new();
        for (_id, kind, status, from_r, to_r) in &rows {
            if inside(to_r) {
                totals_in.add(kind, status);
                per.entry(child_of(to_r)).or_default().0.add(kind, status);
            }
            if inside(from_r) {
                totals_out.add(kind, status);
                per.entry(child_of(from_r)).or_default().1.add(kind, status);
            }
        }
        let mut by_region = vec![];
        for (code, (i, o)) in per {
            let name = self
                .region(&code)
                .await?
                .map(|r| r.name)
                .unwrap_or_else(|| code.clone());
            by_region.push(RegionStats {
                code,
                name,
                transfers_in: i,
                transfers_out: o,
            });
        }

        // Decided steps of these transfers whose party lies in the region.
        #[derive(sqlx::FromRow)]
        struct StepRow {
            code: String,
            party_kind: String,
            party_code: String,
            decision: String,
            opinion: Option<String>,
            began_on: Option<NaiveDate>,
            decided_at: DateTime<Utc>,
        }
        let steps: Vec<StepRow> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT st.code, st.party_kind, st.party_code, COALESCE(sc.region_code, st.party_code) AS party_region, \
             st.decision, st.opinion, st.began_on, st.decided_at \
             FROM transfer_steps st JOIN transfers t ON t.id = st.transfer_id \
             LEFT JOIN schools sc ON st.party_kind = 'school' AND sc.code = st.party_code \
             WHERE st.decision IS NOT NULL AND st.decided_at IS NOT NULL \
             AND t.created_at >= $1 AND t.created_at < $2 AND ($3 IS NULL OR t.kind = $3) \
             AND COALESCE(sc.region_code, st.party_code) >= $4 AND COALESCE(sc.region_code, st.party_code) < $5"
        ).bind(from_ts).bind(to_ts).bind(&kind).bind(&lo).bind(&hi).fetch_all(p).await)?;
        let cal = self.calendar();
        let mut by_step: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut by_auth: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut reasons: BTreeMap<String, i64> = BTreeMap::new();
        for s in &steps {
            if s.decision == "reject" {
                let o = s.opinion.clone().unwrap_or_default();
                let o = o.trim();
                let key: String = if o.is_empty() {
                    "（未填写）".into()
                } else {
                    o.chars().take(60).collect()
                };
                *reasons.entry(key).or_default() += 1;
            }
            let Some(began) = s.began_on else { continue };
            let decided = s.decided_at.with_timezone(&cst).date_naive();
            // Counting the first day, as deadlines do: decided the day it began = 1 working day.
            let days = cal
                .working_days_between(began.pred_opt().unwrap_or(began), decided)
                .max(1);
            by_step.entry(s.code.clone()).or_default().push(days);
            if s.party_kind == "authority" {
                by_auth.entry(s.party_code.clone()).or_default().push(days);
            }
        }
        let summarise = |key: String, label: String, mut v: Vec<i64>| {
            v.sort_unstable();
            DurationStats {
                decided: v.len() as i64,
                median_days: percentile(&v, 0.5),
                p90_days: percentile(&v, 0.9),
                max_days: v.last().copied().unwrap_or(0),
                key,
                label,
            }
        };
        let by_step = by_step
            .into_iter()
            .map(|(k, v)| summarise(k.clone(), step_label(&k).into(), v))
            .collect();
        let mut by_authority = vec![];
        for (k, v) in by_auth {
            let name: Option<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
                "SELECT name FROM authorities WHERE region_code = $1"
            ).bind(&k).fetch_optional(p).await)?;
            by_authority.push(summarise(k.clone(), name.unwrap_or(k), v));
        }
        let mut refusal_reasons: Vec<ReasonCount> = reasons
            .into_iter()
            .map(|(opinion, count)| ReasonCount { opinion, count })
            .collect();
        refusal_reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.opinion.cmp(&b.opinion)));
        refusal_reasons.truncate(20);
        let region_name = match &region {
            Some(r) => self
                .region(r.as_str())
                .await?
                .map(|x| x.name)
                .unwrap_or_default(),
            None => "全国".into(),
        };
        Ok(Stats {
            region: region.map(|r| r.as_str().to_string()),
            region_name,
            from,
            to,
            totals_in,
            totals_out,
            by_region,
            by_step,
            by_authority,
            refusal_reasons,
        })
    }

    /// The statistics as an .xlsx workbook (one sheet per table), audited.
    pub async fn export_statistics(
        &self,
        user: &CurrentUser,
        q: &StatsQuery,
    ) -> AppResult<Vec<u8>> {
        let stats = self.statistics(user, q).await?;
        let st = stats.clone();
        let bytes = tokio::task::spawn_blocking(move || statistics_xlsx(&st))
            .await
            .map_err(|e| AppError::Other(e.to_string()))??;
        let mut tx = self.db.begin().await?;
        audit::record(
            &mut tx,
            self.clock.now(),
            &user.audit_actor(),
            AuditEvent {
                action: "statistics.export",
                entity_type: "statistics",
                entity_id: stats.region.clone().unwrap_or_else(|| "national".into()),
                before: None,
                after: Some(
                    serde_json::json!({ "from": stats.from, "to": stats.to, "kind": q.kind }),
                ),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(bytes)
    }
}

fn xe(e: rust_xlsxwriter::XlsxError) -> AppError {
    AppError::Other(format!("xlsx: {e}"))
}

pub fn statistics_xlsx(s: &Stats) -> AppResult<Vec<u8>> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold().set_background_color("#DDE6F2");
    let ws = wb.add_worksheet();
    ws.set_name("转入转出").map_err(xe)?;
    let h = [
        "地区代码",
        "地区",
        "转入合计",
        "转入·跨省",
        "转入·省内",
        "转入·同意",
        "转入·不同意",
        "转入·撤销",
        "转入·办理中",
        "转出合计",
        "转出·跨省",
        "转出·省内",
        "转出·同意",
        "转出·不同意",
        "转出·撤销",
        "转出·办理中",
    ];
    for (c, t) in h.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *t, &bold)
            .map_err(xe)?;
    }
    for (i, r) in s.by_region.iter().enumerate() {
        let row = i as u32 + 1;
        ws.write_string(row, 0, &r.code).map_err(xe)?;
        ws.write_string(row, 1, &r.name).map_err(xe)?;
        for (j, o) in [&r.transfers_in, &r.transfers_out].iter().enumerate() {
            let base = 2 + j as u16 * 7;
            for (k, v) in [
                o.total,
                o.cross_province,
                o.intra_province,
                o.approved,
                o.rejected,
                o.withdrawn,
                o.in_progress,
            ]
            .iter()
            .enumerate()
            {
                ws.write_number(row, base + k as u16, *v as f64)
                    .map_err(xe)?;
            }
        }
    }
    for (name, rows) in [("各环节用时", &s.by_step), ("各部门用时", &s.by_authority)] {
        let ws = wb.add_worksheet();
        ws.set_name(name).map_err(xe)?;
        for (c, t) in [
            "代码",
            "名称",
            "已办件数",
            "中位数（工作日）",
            "90%分位（工作日）",
            "最长（工作日）",
        ]
        .iter()
        .enumerate()
        {
            ws.write_string_with_format(0, c as u16, *t, &bold)
                .map_err(xe)?;
        }
        for (i, r) in rows.iter().enumerate() {
            let row = i as u32 + 1;
            ws.write_string(row, 0, &r.key).map_err(xe)?;
            ws.write_string(row, 1, &r.label).map_err(xe)?;
            ws.write_number(row, 2, r.decided as f64).map_err(xe)?;
            ws.write_number(row, 3, r.median_days).map_err(xe)?;
            ws.write_number(row, 4, r.p90_days).map_err(xe)?;
            ws.write_number(row, 5, r.max_days as f64).map_err(xe)?;
        }
    }
    let ws = wb.add_worksheet();
    ws.set_name("不同意理由").map_err(xe)?;
    ws.write_string_with_format(0, 0, "审核意见", &bold)
        .map_err(xe)?;
    ws.write_string_with_format(0, 1, "次数", &bold)
        .map_err(xe)?;
    for (i, r) in s.refusal_reasons.iter().enumerate() {
        ws.write_string(i as u32 + 1, 0, &r.opinion).map_err(xe)?;
        ws.write_number(i as u32 + 1, 1, r.count as f64)
            .map_err(xe)?;
    }
    wb.save_to_buffer().map_err(xe)
}
