//! Errors of the use cases: a domain refusal (with its stable code) or a storage failure.

use xueji_domain::{Error, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A refusal the user can act on (validation, permission, state).
    #[error(transparent)]
    Domain(#[from] Error),
    // No `#[source]`: the message already holds the cause, and a chained report would repeat it.
    #[error("database: {0}")]
    Db(sqlx::Error),
    #[error("migration: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Domain(e) => e.code,
            _ => ErrorCode::Internal,
        }
    }

    /// Whether the database refused a row because of a unique key.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, AppError::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    /// The domain error a user sees; storage failures become a generic internal error (the
    /// details go to the log, never to the user).
    pub fn to_domain(&self) -> Error {
        match self {
            AppError::Domain(e) => e.clone(),
            _ => Error::new(
                ErrorCode::Internal,
                "系统内部错误，请稍后重试；如持续出现请联系管理员",
            ),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Db(e)
    }
}

impl From<sqlx::migrate::MigrateError> for AppError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        AppError::Migrate(e)
    }
}

impl From<ErrorCode> for AppError {
    fn from(code: ErrorCode) -> Self {
        AppError::Domain(Error::new(code, code.title()))
    }
}

pub type AppResult<T> = Result<T, AppError>;
