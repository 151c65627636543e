//! Provincial transfer policies (Art. 11): versioned, edited by the province's authority (or the
//! national administrator), readable by everyone signed in, audited. A transfer keeps the
//! versions it was filed under; version 0 is the national default.

use chrono::{DateTime, Utc};
use serde::Serialize;
use xueji_domain::Error;
use xueji_domain::access::{OrgRef, Role};
use xueji_domain::ids::{RegionCode, RegionLevel};
use xueji_domain::policy::{AuthorityLine, Policy};

use crate::audit::{self, AuditEvent};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::{App, on_pool, on_tx};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyOut {
    pub province: String,
    pub province_name: String,
    /// 0 = the national default (no provincial rule saved yet).
    pub version: i64,
    #[schema(value_type = Object)]
    pub policy: Policy,
    pub note: String,
    pub created_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    version: i64,
    policy_json: String,
    note: String,
    created_at: DateTime<Utc>,
    created_by: Option<String>,
}

fn parse_stored(json: &str) -> AppResult<Policy> {
    serde_json::from_str(json).map_err(|e| AppError::Other(format!("stored policy: {e}")))
}

impl App {
    pub(crate) async fn province_name(&self, province: &str) -> AppResult<String> {
        Ok(self
            .region(province)
            .await?
            .map(|r| r.name)
            .unwrap_or_else(|| province.to_string()))
    }

    fn province_of(code: &str) -> AppResult<RegionCode> {
        let r = RegionCode::parse(code).map_err(|e| e.at("province"))?;
        if r.level() != RegionLevel::Province {
            return Err(Error::validation("province", "请使用省级行政区划代码，如 410000").into());
        }
        Ok(r)
    }

    /// The policy a province applies now (its latest version, or the national default).
    pub async fn current_policy(&self, province: &str) -> AppResult<(i64, Policy)> {
        let row: Option<(i64, String)> = on_pool!(self.db.read(), p => sqlx::query_as(
            "SELECT version, policy_json FROM province_policies WHERE province_code = $1 ORDER BY version DESC LIMIT 1"
        ).bind(province).fetch_optional(p).await)?;
        match row {
            Some((v, json)) => Ok((v, parse_stored(&json)?)),
            None => Ok((0, Policy::default())),
        }
    }

    /// A pinned version (0 = the national default).
    pub async fn policy_version(&self, province: &str, version: i64) -> AppResult<Policy> {
        if version == 0 {
            return Ok(Policy::default());
        }
        let json: Option<String> = on_pool!(self.db.read(), p => sqlx::query_scalar(
            "SELECT policy_json FROM province_policies WHERE province_code = $1 AND version = $2"
        ).bind(province).bind(version).fetch_optional(p).await)?;
        match json {
            Some(j) => parse_stored(&j),
            None => Ok(Policy::default()),
        }
    }

    /// The province's policy as users read it.
    pub async fn policy(&self, province: &str) -> AppResult<PolicyOut> {
        let p = Self::province_of(province)?;
        let row: Option<PolicyRow> = on_pool!(self.db.read(), pool => sqlx::query_as(
            "SELECT pp.version, pp.policy_json, pp.note, pp.created_at, u.username AS created_by \
             FROM province_policies pp LEFT JOIN users u ON u.id = pp.created_by \
             WHERE pp.province_code = $1 ORDER BY pp.version DESC LIMIT 1"
        ).bind(p.as_str()).fetch_optional(pool).await)?;
        let province_name = self.province_name(p.as_str()).await?;
        Ok(match row {
            Some(r) => PolicyOut {
                province: p.as_str().into(),
                province_name,
                version: r.version,
                policy: parse_stored(&r.policy_json)?,
                note: r.note,
                created_at: Some(r.created_at),
                created_by: r.created_by,
            },
            None => PolicyOut {
                province: p.as_str().into(),
                province_name,
                version: 0,
                policy: Policy::default(),
                note: "全国默认政策：全年受理、各年级均可转学、四方审核、每环节10个工作日".into(),
                created_at: None,
                created_by: None,
            },
        })
    }

    /// Every saved version, newest first.
    pub async fn policy_history(&self, province: &str) -> AppResult<Vec<PolicyOut>> {
        let p = Self::province_of(province)?;
        let rows: Vec<PolicyRow> = on_pool!(self.db.read(), pool => sqlx::query_as(
            "SELECT pp.version, pp.policy_json, pp.note, pp.created_at, u.username AS created_by \
             FROM province_policies pp LEFT JOIN users u ON u.id = pp.created_by \
             WHERE pp.province_code = $1 ORDER BY pp.version DESC"
        ).bind(p.as_str()).fetch_all(pool).await)?;
        let province_name = self.province_name(p.as_str()).await?;
        rows.into_iter()
            .map(|r| {
                Ok(PolicyOut {
                    province: p.as_str().into(),
                    province_name: province_name.clone(),
                    version: r.version,
                    policy: parse_stored(&r.policy_json)?,
                    note: r.note,
                    created_at: Some(r.created_at),
                    created_by: r.created_by,
                })
            })
            .collect()
    }

    /// Saves a new version. Only the province's own authority (or the national administrator).
    pub async fn set_policy(
        &self,
        user: &CurrentUser,
        province: &str,
        policy: Policy,
        note: &str,
    ) -> AppResult<PolicyOut> {
        let p = Self::province_of(province)?;
        let allowed = match (&user.org, user.role) {
            (_, Role::NationalAdmin) => true,
            (OrgRef::Authority(r), Role::AuthorityAdmin) => r == p.as_str(),
            _ => false,
        };
        if !allowed {
            return Err(Error::forbidden("转学政策只能由本省级学籍主管部门维护").into());
        }
        policy.validate()?;
        let note = note.trim();
        if note.chars().count() > 200 {
            return Err(Error::validation("note", "修订说明不超过200字").into());
        }
        let (old_version, old) = self.current_policy(p.as_str()).await?;
        let now = self.clock.now();
        let json = serde_json::to_string(&policy).map_err(|e| AppError::Other(e.to_string()))?;
        let mut tx = self.db.begin().await?;
        let version = old_version + 1;
        let inserted = on_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO province_policies (province_code, version, policy_json, note, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        ).bind(p.as_str()).bind(version).bind(&json).bind(note).bind(now).bind(user.id)
        .execute(&mut *c).await.map(|r| r.rows_affected()));
        if let Err(e) = inserted {
            let e = AppError::from(e);
            return Err(if e.is_unique_violation() {
                Error::conflict().into()
            } else {
                e
            });
        }
        audit::record(
            &mut tx,
            now,
            &user.audit_actor(),
            AuditEvent {
                action: "policy.set",
                entity_type: "province_policy",
                entity_id: format!("{}#{version}", p.as_str()),
                before: Some(serde_json::to_value(&old).unwrap_or_default()),
                after: Some(serde_json::to_value(&policy).unwrap_or_default()),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        self.policy(p.as_str()).await
    }

    /// The chain of authorities above a school: its supervising authority, the city level (unless
    /// it is a grouping row like 市辖区), and the province.
    pub(crate) async fn authority_line(
        &self,
        school_code: &str,
        region: &str,
        authority: &str,
    ) -> AppResult<AuthorityLine> {
        let r = RegionCode::parse(region)?;
        let city = r.city();
        let city_row = self.region(city.as_str()).await?;
        let grouping = |n: &str| {
            matches!(
                n,
                "市辖区" | "县" | "省直辖县级行政区划" | "自治区直辖县级行政区划"
            )
        };
        let city = match city_row {
            Some(c) if c.level == "city" && !grouping(&c.name) => Some(c.code),
            _ => None,
        };
        Ok(AuthorityLine {
            school: school_code.into(),
            authority: authority.into(),
            city,
            province: r.province().as_str().into(),
        })
    }
}
