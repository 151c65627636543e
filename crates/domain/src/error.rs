//! The error vocabulary shared by every layer.
//!
//! Each refusal carries a stable snake_case [`ErrorCode`] (the API's `code`, fixed by API.md) and a
//! Chinese message that tells the user what to do. HTTP status lives here too so that the API and
//! the UI agree on it; nothing in this module does I/O.

use std::fmt;

/// Stable error codes of the API (`problem+json` `code`). Never rename one: provinces' systems
/// and scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    ValidationFailed,
    InvalidIdNumber,
    InvalidStudentNo,
    NameMismatch,
    ReasonRequired,
    PolicyViolation,
    TransferInProgress,
    Conflict,
    NotYourTurn,
    DuplicatePerson,
    /// 疑似重复: same name, gender and birth date as an existing record, no document match;
    /// registration needs an explicit confirmation.
    SuspectedDuplicate,
    ClassFull,
    AccountLocked,
    TooManyRequests,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A new password breaks the password policy (length, classes, username, recent reuse).
    WeakPassword,
    /// The password is right but the account asks its TOTP code (second login call).
    TotpRequired,
    /// The account must change its (initial or expired) password before anything else.
    PasswordChangeRequired,
    /// 封存: unused for six months; an administrator above must unseal it.
    AccountSealed,
    /// The account's role must use the TOTP second factor and it has not enrolled yet: only
    /// `auth/*` (enrolment among them) until it does.
    TotpEnrolmentRequired,
    /// 停用: disabled by the system administrator.
    AccountDisabled,
    /// 对接: the step belongs to a docked province and is taken by its own system through the
    /// docking interface, not by people in the national UI or API.
    DockedParty,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::ValidationFailed => "validation_failed",
            Self::InvalidIdNumber => "invalid_id_number",
            Self::InvalidStudentNo => "invalid_student_no",
            Self::NameMismatch => "name_mismatch",
            Self::ReasonRequired => "reason_required",
            Self::PolicyViolation => "policy_violation",
            Self::TransferInProgress => "transfer_in_progress",
            Self::Conflict => "conflict",
            Self::NotYourTurn => "not_your_turn",
            Self::DuplicatePerson => "duplicate_person",
            Self::SuspectedDuplicate => "suspected_duplicate",
            Self::ClassFull => "class_full",
            Self::AccountLocked => "account_locked",
            Self::TooManyRequests => "too_many_requests",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::WeakPassword => "weak_password",
            Self::TotpRequired => "totp_required",
            Self::PasswordChangeRequired => "password_change_required",
            Self::AccountSealed => "account_sealed",
            Self::TotpEnrolmentRequired => "totp_enrolment_required",
            Self::AccountDisabled => "account_disabled",
            Self::DockedParty => "docked_party",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status the API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthenticated | Self::TotpRequired => 401,
            Self::Forbidden
            | Self::NotYourTurn
            | Self::PasswordChangeRequired
            | Self::AccountSealed
            | Self::TotpEnrolmentRequired
            | Self::AccountDisabled
            | Self::DockedParty => 403,
            Self::NotFound => 404,
            Self::TransferInProgress
            | Self::Conflict
            | Self::DuplicatePerson
            | Self::SuspectedDuplicate => 409,
            Self::AccountLocked | Self::TooManyRequests => 429,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Internal => 500,
            Self::ValidationFailed
            | Self::InvalidIdNumber
            | Self::InvalidStudentNo
            | Self::NameMismatch
            | Self::ReasonRequired
            | Self::PolicyViolation
            | Self::ClassFull
            | Self::WeakPassword => 422,
        }
    }

    /// Short Chinese title of the problem (`problem+json` `title`).
    pub fn title(self) -> &'static str {
        match self {
            Self::Unauthenticated => "未登录或登录已过期",
            Self::Forbidden => "无权执行此操作",
            Self::NotFound => "未找到",
            Self::ValidationFailed => "填写的内容有误",
            Self::InvalidIdNumber => "身份证件号码无效",
            Self::InvalidStudentNo => "学籍号无效",
            Self::NameMismatch => "姓名与学籍信息不一致",
            Self::ReasonRequired => "请填写意见或理由",
            Self::PolicyViolation => "不符合转学政策",
            Self::TransferInProgress => "该学生有在办业务",
            Self::Conflict => "数据已被他人修改",
            Self::NotYourTurn => "尚未轮到本单位办理",
            Self::DuplicatePerson => "该学生已有学籍",
            Self::SuspectedDuplicate => "疑似重复学籍",
            Self::ClassFull => "班级已满",
            Self::AccountLocked => "账号已临时锁定",
            Self::TooManyRequests => "操作过于频繁",
            Self::PayloadTooLarge => "提交的内容过大",
            Self::UnsupportedMediaType => "不支持的内容类型",
            Self::WeakPassword => "密码不符合安全要求",
            Self::TotpRequired => "请输入动态验证码",
            Self::PasswordChangeRequired => "请先修改密码",
            Self::AccountSealed => "账号已封存",
            Self::TotpEnrolmentRequired => "请先绑定动态口令",
            Self::AccountDisabled => "账号已停用",
            Self::DockedParty => "由对接省份的学籍系统办理",
            Self::Internal => "系统内部错误",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal with its code, a Chinese message for the user, and optionally the form field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<&'static str>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The same error, attached to a form field (shown beside it in the UI).
    pub fn at(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message).at(field)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("未找到{what}，或您无权查看"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn conflict() -> Self {
        Self::new(ErrorCode::Conflict, "数据已被他人修改，请刷新页面后重试")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_match_serde() {
        for code in [
            ErrorCode::NotYourTurn,
            ErrorCode::TransferInProgress,
            ErrorCode::InvalidIdNumber,
        ] {
            let json = serde_json_like(code);
            assert_eq!(json, code.as_str());
        }
    }

    fn serde_json_like(code: ErrorCode) -> String {
        // serde's rename_all must produce the same word as as_str (the API relies on both).
        #[derive(serde::Serialize)]
        struct W(ErrorCode);
        let s = format!("{:?}", code);
        let _ = W(code);
        // Convert CamelCase Debug to snake_case the way serde does.
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if ch.is_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.extend(ch.to_lowercase());
            } else {
                out.push(ch);
            }
        }
        out
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ErrorCode::Unauthenticated.http_status(), 401);
        assert_eq!(ErrorCode::NotYourTurn.http_status(), 403);
        assert_eq!(ErrorCode::TransferInProgress.http_status(), 409);
        assert_eq!(ErrorCode::NameMismatch.http_status(), 422);
    }
}
