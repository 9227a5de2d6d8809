//! Embeddings, paid for as every model call is: the same hold, settle,
//! release and idempotency as a chat, through the same store calls.
//!
//! An embedding model writes no text: a call reads its inputs, one model
//! call each, and is charged the input tokens the model reports. The hold
//! is the most that can be: each input's UTF-8 size (no common tokenizer
//! makes more tokens than bytes) and [`MESSAGE_OVERHEAD_TOKENS`] for it,
//! plus the fixed overhead a hold always adds. A free embedder (the local
//! one) makes its vectors first; they are then charged and saved in one
//! transaction, as the dummy's reply is.
//!
//! Who pays when something fails is the table in docs/billing.md:
//! - the model refuses the first input (throttled, invalid, forbidden):
//!   nobody, the hold is released;
//! - a later input fails, or one fails after the model read it: the caller
//!   pays what the model read (the tokens it reported for the inputs it
//!   answered, and the bound of an input it read and did not answer), and
//!   is told the call failed; nothing more is read after a failure;
//! - the settle cannot commit, or the function dies: as for a chat.
//!
//! The call is saved as a chat: its message a summary of the inputs (the
//! idempotency key is bound to the whole body apart), its response a line
//! saying what was made (`2 embeddings of 1024 numbers`). The vectors
//! themselves are kept on the key's marker alone (`ChatRecord::replay`, in
//! base64, `embedder::to_base64`, comma separated), so a retry under the
//! same key gets the same vectors back and is charged nothing, and the
//! history stays a list of lines.

use std::time::Instant;

use super::{defer, release, settle_in_time, SETTLE_MARGIN};
use crate::app::App;
use crate::clock::Timestamp;
use crate::credits::Credits;
use crate::deadline::Deadline;
use crate::domain::{ChatMessage, KeyedRequest, VerifiedToken};
use crate::embedder::{from_base64, to_base64, Embedding};
use crate::error::ApiError;
use crate::pricing::{Usage, MESSAGE_OVERHEAD_TOKENS};
use crate::responder::{Finish, StartFailure};
use crate::served::EmbeddingModel;
use crate::store::{ChatOutcome, ChatRecord, HoldOutcome, HoldRequest, ReleaseReason, SavedChat};

/// One request for embeddings.
pub struct EmbedCall<'a> {
    pub model: &'a EmbeddingModel,
    /// The texts, each made a vector in order.
    pub inputs: &'a [String],
    /// The size of every vector: one the embedder makes.
    pub dimensions: u32,
    /// What the call is saved as in the history.
    pub message: &'a ChatMessage,
    pub key: Option<&'a KeyedRequest>,
    pub deadline: Deadline,
    /// For the metrics of the rare events on the way.
    pub function: &'static str,
}

/// Embeddings paid for (or replayed: `cost` 0).
#[derive(Debug)]
pub struct Embedded {
    pub chat_id: uuid::Uuid,
    /// One per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// What was charged for: input tokens only.
    pub usage: Usage,
    pub cost: Credits,
    /// Answered before under the same idempotency key: nothing charged now.
    pub replayed: bool,
}

/// What bounds the input tokens of `inputs`: each one's UTF-8 size and the
/// per-message overhead (a model may add markers around each text).
pub fn input_bound(inputs: &[String]) -> usize {
    inputs
        .iter()
        .map(|input| input.len() + MESSAGE_OVERHEAD_TOKENS)
        .sum()
}

/// The vectors of `call`, paid for: see the module's text.
pub async fn embed(
    app: &App,
    token: &VerifiedToken,
    call: &EmbedCall<'_>,
) -> Result<Embedded, ApiError> {
    if call.model.embedder.is_paid() {
        Box::pin(metered(app, token, call)).await
    } else {
        Box::pin(free(app, token, call)).await
    }
}

/// A free embedder's vectors, made first, then charged and saved in one
/// transaction.
async fn free(
    app: &App,
    token: &VerifiedToken,
    call: &EmbedCall<'_>,
) -> Result<Embedded, ApiError> {
    let made = Made::read(call, None).await;
    if let Some(failure) = made.failure {
        return Err(failure.error);
    }
    let usage = made.usage(0);
    let cost = call.model.pricing.charge(usage);
    let chat_id = uuid::Uuid::now_v7();
    let (response, vectors) = (described(&made.vectors), saved_form(&made.vectors));
    let record = ChatRecord {
        chat_id,
        message: call.message,
        model: &call.model.id,
        response: &response,
        replay: call.key.is_some().then_some(vectors.as_str()),
        tool_calls: &[],
        cost,
        usage,
        finish: Finish::Stop,
        created: Timestamp::now(),
    };
    let outcome = Box::pin(
        app.store
            .charge_and_save_chat(token, &record, call.key, call.deadline),
    )
    .await?;
    match outcome {
        ChatOutcome::Saved => Ok(Embedded {
            chat_id,
            vectors: made.vectors,
            usage,
            cost,
            replayed: false,
        }),
        ChatOutcome::Replayed(saved) => replayed(saved, call.inputs.len()),
    }
}

/// A paid embedder's vectors: hold, one model call per input, settle (or
/// release when the model read nothing).
async fn metered(
    app: &App,
    token: &VerifiedToken,
    call: &EmbedCall<'_>,
) -> Result<Embedded, ApiError> {
    let cutoff = call
        .deadline
        .instant()
        .map(|at| at.checked_sub(SETTLE_MARGIN).unwrap_or(at));
    // A 503 before anything is held when no time is left for a call.
    if cutoff.is_some_and(|at| at <= Instant::now()) {
        return Err(ApiError::ModelUnavailable(
            "too little time left in the invocation for a model call".into(),
        ));
    }
    let bound = input_bound(call.inputs);
    let pricing = call.model.pricing;
    let now = Timestamp::now();
    let request = HoldRequest {
        amount: pricing.hold(bound, 0),
        message: call.message,
        model: &call.model.id,
        pricing,
        key: call.key,
        taken: now,
        expires: now.plus(app.config.hold_ttl),
    };
    let hold = app.store.new_hold(token, &request);
    let hold = match Box::pin(app.store.take(token, &request, &hold, call.deadline)).await {
        Ok(HoldOutcome::Held(hold)) => hold,
        Ok(HoldOutcome::Replayed(saved)) => return replayed(saved, call.inputs.len()),
        Err(error) => {
            // As for a chat: a store failure leaves the hold in doubt, so
            // it is given back before any model is called.
            if error.status().is_server_error() {
                Box::pin(release(
                    app,
                    &hold,
                    ReleaseReason::HoldUnconfirmed,
                    call.deadline,
                ))
                .await;
            }
            return Err(error);
        }
    };
    let made = Made::read(call, cutoff).await;
    let read_nothing = made.vectors.is_empty()
        && made
            .failure
            .as_ref()
            .is_some_and(|failure| !failure.read_input);
    if read_nothing {
        Box::pin(release(
            app,
            &hold,
            ReleaseReason::ModelRefused,
            call.deadline,
        ))
        .await;
        return Err(made.failure.map_or_else(
            || ApiError::internal("a refused embedding call without its failure"),
            |failure| failure.error,
        ));
    }
    // The input the model read and did not answer is charged its bound.
    let unanswered = match &made.failure {
        Some(failure) if failure.read_input => {
            input_bound(&call.inputs[made.vectors.len()..=made.vectors.len()])
        }
        _ => 0,
    };
    let usage = made.usage(unanswered);
    let cost = pricing.cost(usage, hold.amount);
    let chat_id = uuid::Uuid::now_v7();
    // A failed call keeps no vectors: its retry under the key is told so.
    let (response, vectors) = match made.failure {
        None => (described(&made.vectors), saved_form(&made.vectors)),
        Some(_) => (String::new(), String::new()),
    };
    let record = ChatRecord {
        chat_id,
        message: call.message,
        model: &call.model.id,
        response: &response,
        replay: call.key.is_some().then_some(vectors.as_str()),
        tool_calls: &[],
        cost,
        usage,
        finish: if made.failure.is_some() {
            Finish::Length
        } else {
            Finish::Stop
        },
        created: Timestamp::now(),
    };
    let cost = match Box::pin(settle_in_time(app, &hold, &record, call.deadline)).await {
        Ok(true) => cost,
        Ok(false) => {
            tracing::warn!(hold = %hold.hold_id, "a hold was swept before its settle");
            hold.amount
        }
        Err(error) => {
            let during = (call.function, call.deadline);
            Box::pin(defer(app, during, &hold, &record, &error)).await;
            cost
        }
    };
    match made.failure {
        Some(failure) => Err(ApiError::ChargedFailure {
            failure: Box::new(failure.error),
            charged: cost,
        }),
        None => Ok(Embedded {
            chat_id,
            vectors: made.vectors,
            usage,
            cost,
            replayed: false,
        }),
    }
}

/// What the history shows of a call: how many vectors of what size.
fn described(vectors: &[Vec<f32>]) -> String {
    let size = vectors.first().map_or(0, Vec::len);
    match vectors.len() {
        1 => format!("1 embedding of {size} numbers"),
        n => format!("{n} embeddings of {size} numbers"),
    }
}

/// How a call's vectors are kept for a replay: one base64 vector per
/// input, comma separated.
fn saved_form(vectors: &[Vec<f32>]) -> String {
    vectors
        .iter()
        .map(|v| to_base64(v))
        .collect::<Vec<_>>()
        .join(",")
}

/// The earlier answer under the same key: its vectors, nothing charged
/// now. A call that failed there kept none: its retry is told so.
fn replayed(saved: SavedChat, inputs: usize) -> Result<Embedded, ApiError> {
    tracing::info!(chat_id = %saved.chat_id, "embeddings replayed for their idempotency key");
    let vectors: Option<Vec<Vec<f32>>> = saved
        .response
        .split(',')
        .filter(|part| !part.is_empty())
        .map(from_base64)
        .collect();
    match vectors {
        Some(vectors) if vectors.len() == inputs => Ok(Embedded {
            chat_id: uuid::Uuid::parse_str(&saved.chat_id).unwrap_or_default(),
            vectors,
            usage: saved.usage.unwrap_or_default(),
            cost: Credits::ZERO,
            replayed: true,
        }),
        // A call that failed, or one the sweeper settled after its
        // function died: it was charged then, and has no vectors to give.
        _ => Err(ApiError::ModelError(
            "the embeddings call under this Idempotency-Key was charged then and left no vectors"
                .into(),
        )),
    }
}

/// What the model made of the inputs, in order, until the first failure.
struct Made {
    vectors: Vec<Vec<f32>>,
    input_tokens: u64,
    failure: Option<StartFailure>,
}

impl Made {
    /// One call per input, one after the other, each before the cut-off:
    /// the first failure ends the call, and nothing more is read.
    async fn read(call: &EmbedCall<'_>, cutoff: Option<Instant>) -> Self {
        let mut made = Made {
            vectors: Vec::with_capacity(call.inputs.len()),
            input_tokens: 0,
            failure: None,
        };
        for input in call.inputs {
            let embed = call.model.embedder.embed(input, call.dimensions);
            let result = match cutoff {
                None => embed.await,
                // A model still silent at the cut-off had read the input.
                Some(at) => tokio::time::timeout_at(at.into(), embed)
                    .await
                    .unwrap_or_else(|_| {
                        Err(StartFailure::after_reading(ApiError::ModelUnavailable(
                            "the embedding model did not answer before the cut-off".into(),
                        )))
                    }),
            };
            match result {
                Ok(Embedding {
                    vector,
                    input_tokens,
                }) => {
                    made.vectors.push(vector);
                    made.input_tokens = made.input_tokens.saturating_add(input_tokens);
                }
                Err(failure) => {
                    made.failure = Some(failure);
                    break;
                }
            }
        }
        made
    }

    /// What is charged: the tokens reported, and `unanswered`'s bound (an
    /// input read without a report) with the fixed overhead a bound has.
    fn usage(&self, unanswered: usize) -> Usage {
        let bound = match unanswered {
            0 => 0,
            n => Usage::bound(n, 0).input_tokens,
        };
        Usage {
            input_tokens: self.input_tokens.saturating_add(bound),
            ..Usage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_each_inputs_size_and_overhead() {
        let inputs = vec!["héllo".to_owned(), "a".to_owned()];
        assert_eq!(input_bound(&inputs), 6 + 1 + 2 * MESSAGE_OVERHEAD_TOKENS);
    }

    #[test]
    fn a_replay_gives_the_saved_vectors_and_a_failed_one_an_error() {
        let vectors = vec![vec![0.5f32, -1.0], vec![0.25, 2.0]];
        let saved = |response: String| SavedChat {
            chat_id: uuid::Uuid::nil().to_string(),
            response,
            timestamp: String::new(),
            finish: Finish::Stop,
            usage: Some(Usage {
                input_tokens: 3,
                ..Usage::default()
            }),
            tool_calls: vec![],
        };
        let again = replayed(saved(saved_form(&vectors)), 2).unwrap();
        assert_eq!(
            (again.vectors, again.cost, again.replayed),
            (vectors, Credits::ZERO, true)
        );
        assert_eq!(again.usage.input_tokens, 3);
        let failed = replayed(saved(String::new()), 2).unwrap_err();
        assert_eq!(failed.code(), "model_error");
        let swept = replayed(saved(described(&[vec![0.5; 4]])), 1).unwrap_err();
        assert_eq!(swept.code(), "model_error");
        assert_eq!(
            described(&vec![vec![0.5; 4]; 2]),
            "2 embeddings of 4 numbers"
        );
    }

    #[test]
    fn an_unanswered_input_is_charged_its_bound_with_the_overhead() {
        let made = Made {
            vectors: vec![vec![1.0]],
            input_tokens: 4,
            failure: None,
        };
        assert_eq!(made.usage(0).input_tokens, 4);
        let bound = 10 + crate::pricing::INPUT_OVERHEAD_TOKENS;
        assert_eq!(made.usage(10).input_tokens, 4 + bound);
        assert_eq!(made.usage(10).output_tokens, 0);
    }
}
