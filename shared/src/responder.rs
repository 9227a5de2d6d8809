//! Where a chat's reply comes from. The product ships a fixed reply; a real
//! model plugs in by implementing [`Responder`] and nothing else changes.

use std::future::Future;
use std::pin::Pin;

use crate::domain::{ChatMessage, Username};
use crate::error::ApiError;
use crate::pricing::Usage;

/// The reply of the original design, until a real model is wired in.
pub const DUMMY_RESPONSE: &str = "AI response";

/// A reply and what the model says it used to write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub usage: Usage,
}

pub type ResponseFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send + 'a>>;

/// Produces the reply to one message. Called before anything is charged, so
/// a failing model costs the user nothing.
///
/// A free responder is called before the session and balance are checked,
/// since the check and the charge are one transaction. A paid one (see
/// [`Responder::is_paid`]) is called only once a hold on the most the chat
/// can cost has been taken, or any well-formed token could run up the bill
/// and concurrent chats could buy more calls than the balance covers.
pub trait Responder: Send + Sync {
    fn respond<'a>(&'a self, user: &'a Username, message: &'a ChatMessage) -> ResponseFuture<'a>;

    /// Whether a call costs us money. If it does, the chat handler holds
    /// the most it can cost before calling, and settles after.
    fn is_paid(&self) -> bool {
        false
    }

    /// The most tokens a reply may have: what bounds a hold's output part.
    fn max_output_tokens(&self) -> u32 {
        0
    }
}

/// Answers every message with [`DUMMY_RESPONSE`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DummyResponder;

impl Responder for DummyResponder {
    fn respond<'a>(&'a self, _user: &'a Username, _message: &'a ChatMessage) -> ResponseFuture<'a> {
        Box::pin(async {
            Ok(Reply {
                text: DUMMY_RESPONSE.to_owned(),
                usage: Usage::default(),
            })
        })
    }
}
