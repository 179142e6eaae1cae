//! What can go wrong in the store, said in Countersign's terms.

use countersign_model::RequestId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, read or written. Callers fail closed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Something stored does not read back as Countersign wrote it.
    #[error("the store holds unreadable data: {0}")]
    Corrupt(String),
    #[error("request {0} does not exist")]
    UnknownRequest(RequestId),
    #[error("request {0} already exists")]
    DuplicateRequest(RequestId),
    #[error("an audit event could not be sealed: {0}")]
    Audit(#[from] countersign_audit::SealError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
