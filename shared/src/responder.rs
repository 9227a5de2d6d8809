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
/// It is also called before the session and balance are checked, since the
/// check and the charge are one transaction. That is free with the dummy
/// reply; a paid model must first check the session and balance (one more
/// read) or cap calls per user, or any well-formed token could run up its bill.
pub trait Responder: Send + Sync {
    fn respond<'a>(&'a self, user: &'a Username, message: &'a ChatMessage) -> ResponseFuture<'a>;
}

/// Answers every message with [`DUMMY_RESPONSE`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DummyResponder;

impl Responder for DummyResponder {
    fn respond<'a>(&'a self, _user: &'a Username, _message: &'a ChatMessage) -> ResponseFuture<'a> {
        Box::pin(async { Ok(DUMMY_RESPONSE.to_owned()) })
    }
}
