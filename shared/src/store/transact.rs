//! One `TransactWriteItems`, sent until it is decided: the one place that
//! knows which failures are worth sending again.
//!
//! A conflict, throttling or an unknown outcome (a timeout, an in-progress
//! transaction, the service's own failure) is sent again, within the
//! attempts and the deadline of [`with_retries`]. That is safe because every
//! transaction here holds an item new to this request (a chat id, a hold id,
//! an entry id) whose "must not exist" condition tells its own earlier
//! commit apart from anything else; each caller's judge reads it so.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};

use super::retry::{with_retries, worth_retrying, Attempt};
use super::{storage_error, transient, Store};
use crate::deadline::Deadline;
use crate::error::ApiError;

impl Store {
    /// Sends `items` as one transaction. `done` is the answer when it
    /// commits; `judge` reads a cancellation's reasons, item by item, and
    /// gives the answer when a condition decides it (`None`: not decided,
    /// so a conflict or throttling is tried again, anything else is ours).
    pub(super) async fn transact<T>(
        &self,
        items: Vec<TransactWriteItem>,
        deadline: Deadline,
        done: impl Fn() -> T,
        judge: impl Fn(&[CancellationReason]) -> Option<Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        with_retries(deadline, || async {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Attempt::Done(Ok(done())),
                Err(err) => err,
            };
            match cancellation_reasons(&err) {
                // Perhaps applied, perhaps not: sent again, its new item
                // tells.
                None if transient(&err) => Attempt::Retry,
                None => Attempt::Done(Err(storage_error(err))),
                Some(reasons) => match judge(&reasons) {
                    Some(answer) => Attempt::Done(answer),
                    None if worth_retrying(&reasons) => Attempt::Retry,
                    None => Attempt::Done(Err(storage_error(err))),
                },
            }
        })
        .await
    }
}

/// Why a transaction was cancelled, item by item; `None` if it was not.
pub(super) fn cancellation_reasons(
    err: &SdkError<TransactWriteItemsError, HttpResponse>,
) -> Option<Vec<CancellationReason>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            Some(cancelled.cancellation_reasons().to_vec())
        }
        _ => None,
    }
}

/// Whether item `index`'s condition refused the transaction.
pub(super) fn condition_failed(reasons: &[CancellationReason], index: usize) -> bool {
    reasons.get(index).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}
