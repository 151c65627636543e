//! Who acts: organisations, roles and the actor of a request.

use serde::{Deserialize, Serialize};

/// A user's role (API names fixed by GLOSSARY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 学籍管理员: files applications, maintains records.
    SchoolAdmin,
    /// 学籍主管领导 / 审核员: confirms the school's steps.
    SchoolReviewer,
    /// 学籍主管部门 operator and reviewer.
    AuthorityAdmin,
    /// 教育部 national administrator.
    NationalAdmin,
    /// 系统管理员 (三员分立): manages accounts; sees no student data.
    SystemAdmin,
    /// 安全管理员 (三员分立): security settings and unsealing; sees no student data.
    SecurityAdmin,
    /// 安全审计员 (三员分立): reads the audit trail and nothing else.
    AuditAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SchoolAdmin => "school_admin",
            Self::SchoolReviewer => "school_reviewer",
            Self::AuthorityAdmin => "authority_admin",
            Self::NationalAdmin => "national_admin",
            Self::SystemAdmin => "system_admin",
            Self::SecurityAdmin => "security_admin",
            Self::AuditAdmin => "audit_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "school_admin" => Self::SchoolAdmin,
            "school_reviewer" => Self::SchoolReviewer,
            "authority_admin" => Self::AuthorityAdmin,
            "national_admin" => Self::NationalAdmin,
            "system_admin" => Self::SystemAdmin,
            "security_admin" => Self::SecurityAdmin,
            "audit_admin" => Self::AuditAdmin,
            _ => return None,
        })
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::SchoolAdmin => "学校学籍管理员",
            Self::SchoolReviewer => "学校学籍主管领导（审核员）",
            Self::AuthorityAdmin => "学籍主管部门管理员",
            Self::NationalAdmin => "全国学籍管理员",
            Self::SystemAdmin => "系统管理员",
            Self::SecurityAdmin => "安全管理员",
            Self::AuditAdmin => "安全审计员",
        }
    }

    /// The three separated administrators (三员分立): they run the system and never see or
    /// change student data.
    pub fn is_separated_admin(self) -> bool {
        matches!(
            self,
            Self::SystemAdmin | Self::SecurityAdmin | Self::AuditAdmin
        )
    }

    pub fn is_school(self) -> bool {
        matches!(self, Self::SchoolAdmin | Self::SchoolReviewer)
    }
}

/// An organisation that takes part in the system: a school (by its 10-digit 学校标识码), an
/// education authority (学籍主管部门, by the 6-digit region code it serves), or the Ministry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "code", rename_all = "snake_case")]
pub enum OrgRef {
    School(String),
    Authority(String),
    National,
}

/// The user behind a request, as the domain needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub role: Role,
    pub org: OrgRef,
}
