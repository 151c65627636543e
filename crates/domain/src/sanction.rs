//! 处分 (disciplinary sanctions) as the student record keeps them, and when one is in force.
//!
//! The kinds are those of the 中小学 student management rules: 警告, 严重警告, 记过, 留校察看.
//! 开除学籍 is not a sanction kept here: it ends the record and would be a status change, and
//! 义务教育 students cannot be expelled at all. A sanction is in force from the day it was
//! decided until its period ends or the school revokes it (解除处分); a province may refuse
//! transfers out while one is in force (`Policy::refuse_sanctioned`).

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SanctionKind {
    /// 警告
    Warning,
    /// 严重警告
    SeriousWarning,
    /// 记过
    Demerit,
    /// 留校察看
    Probation,
}

impl SanctionKind {
    pub const ALL: [SanctionKind; 4] = [
        Self::Warning,
        Self::SeriousWarning,
        Self::Demerit,
        Self::Probation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::SeriousWarning => "serious_warning",
            Self::Demerit => "demerit",
            Self::Probation => "probation",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                Error::validation("kind", "处分种类无效：应为警告、严重警告、记过或留校察看")
            })
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Warning => "警告",
            Self::SeriousWarning => "严重警告",
            Self::Demerit => "记过",
            Self::Probation => "留校察看",
        }
    }

    /// The period when the decision names none: six months for warnings, a year otherwise.
    pub fn default_months(self) -> u32 {
        match self {
            Self::Warning | Self::SeriousWarning => 6,
            Self::Demerit | Self::Probation => 12,
        }
    }
}

/// Longest period a decision may name (the rest of a 高中 career).
pub const MAX_PERIOD_MONTHS: u32 = 36;

/// The last day a sanction is in force: the named end, or the kind's default period. Checks the
/// dates a school enters.
pub fn period_end(
    kind: SanctionKind,
    decided_on: NaiveDate,
    until: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<NaiveDate, Error> {
    if decided_on > today {
        return Err(Error::validation("decided_on", "处分决定日期不能晚于今天"));
    }
    let latest = decided_on + Months::new(MAX_PERIOD_MONTHS);
    match until {
        Some(u) if u < decided_on => {
            Err(Error::validation("ends_on", "处分期限不能早于处分决定日期"))
        }
        Some(u) if u > latest => Err(Error::validation("ends_on", "处分期限最长为36个月")),
        Some(u) => Ok(u),
        None => Ok(decided_on + Months::new(kind.default_months())),
    }
}

/// Whether a sanction is in force on `today`.
pub fn in_force(until: NaiveDate, revoked: bool, today: NaiveDate) -> bool {
    !revoked && today <= until
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn kinds_round_trip_and_unknown_is_refused() {
        for k in SanctionKind::ALL {
            assert_eq!(SanctionKind::parse(k.as_str()).unwrap(), k);
        }
        let e = SanctionKind::parse("expulsion").unwrap_err();
        assert_eq!(e.field, Some("kind"));
    }

    #[test]
    fn default_period_follows_the_kind() {
        let today = d(2026, 11, 2);
        let end = period_end(SanctionKind::Warning, d(2026, 10, 8), None, today).unwrap();
        assert_eq!(end, d(2027, 4, 8));
        let end = period_end(SanctionKind::Probation, d(2026, 10, 8), None, today).unwrap();
        assert_eq!(end, d(2027, 10, 8));
    }

    #[test]
    fn dates_are_checked() {
        let today = d(2026, 11, 2);
        let k = SanctionKind::Demerit;
        assert!(period_end(k, d(2026, 11, 3), None, today).is_err());
        assert!(period_end(k, d(2026, 10, 1), Some(d(2026, 9, 30)), today).is_err());
        assert!(period_end(k, d(2026, 10, 1), Some(d(2029, 10, 2)), today).is_err());
        assert_eq!(
            period_end(k, d(2026, 10, 1), Some(d(2026, 12, 31)), today).unwrap(),
            d(2026, 12, 31)
        );
    }

    #[test]
    fn in_force_until_its_last_day_unless_revoked() {
        let until = d(2026, 12, 31);
        assert!(in_force(until, false, d(2026, 12, 31)));
        assert!(!in_force(until, false, d(2027, 1, 1)));
        assert!(!in_force(until, true, d(2026, 12, 1)));
    }
}
