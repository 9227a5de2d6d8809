//! Where a chat's reply comes from. The product ships a fixed reply; a real
//! model plugs in by implementing [`Responder`] and nothing else changes.

use std::future::Future;
use std::pin::Pin;

use crate::domain::{ChatMessage, Username};
use crate::error::ApiError;

/// The reply of the original design, until a real model is wired in.
pub const DUMMY_RESPONSE: &str = "AI response";

pub type ResponseFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ApiError>> + Send + 'a>>;

/// Produces the reply to one message. Called before anything is charged, so
/// a failing model costs the user nothing.
///
/// A free responder is called before the session and balance are checked,
/// since the check and the charge are one transaction. A paid one (see
/// [`Responder::is_paid`]) is called only after one more read has found the
/// session live and the balance sufficient, or any well-formed token could
/// run up the bill.
pub trait Responder: Send + Sync {
    fn respond<'a>(&'a self, user: &'a Username, message: &'a ChatMessage) -> ResponseFuture<'a>;

    /// Whether a call costs us money. If it does, the chat handler spends a
    /// read on the session and balance before calling; if not, it keeps to
    /// the one transaction per chat.
    fn is_paid(&self) -> bool {
        false
    }
}

/// Answers every message with [`DUMMY_RESPONSE`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DummyResponder;

impl Responder for DummyResponder {
    fn respond<'a>(&'a self, _user: &'a Username, _message: &'a ChatMessage) -> ResponseFuture<'a> {
        Box::pin(async { Ok(DUMMY_RESPONSE.to_owned()) })
    }
}
