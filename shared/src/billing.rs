//! The one way a reply is paid for, on every route.
//!
//! A free responder (the dummy) is asked first, and its reply is charged
//! and saved in one transaction. A paid model is metered:
//!
//! 1. **estimate** the most the call can cost ([`Pricing::hold`], pure);
//! 2. **hold** that much, if the session is live, the balance covers it
//!    and the user has fewer open calls than the cap ([`open`]);
//! 3. **the model**, read piece by piece, to its end, to the deadline's
//!    cut-off, or until the client goes ([`OpenCall::finish`]);
//! 4. **settle** to what it cost, or **release** the hold if the model
//!    processed nothing. An [`OpenCall`] must be finished: only that
//!    settles it.
//!
//! Who pays when something fails (docs/billing.md has the table):
//! - the model refuses before any output (throttled, invalid, forbidden):
//!   nobody, the hold is released;
//! - it stalls, breaks or is cut off after it accepted the request, or the
//!   client leaves: the caller, for what it read and wrote (its usage when
//!   it reported one, else the input's bound and the UTF-8 size of what it
//!   wrote, reasoning included), never more than the hold;
//! - it ends with usage and no text (reasoning only, filtered): its usage;
//! - the settle cannot commit: it is tried until the deadline's margin,
//!   then what is owed is recorded on the hold, for the sweeper to charge;
//! - the function dies: the sweeper charges what is recorded, or else the
//!   whole hold, the bound of the model's work.

pub mod embeddings;

use crate::credits::Credits;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::clock::Timestamp;
use crate::deadline::Deadline;
use crate::domain::{ChatMessage, KeyedRequest, VerifiedToken};
use crate::error::ApiError;
use crate::metrics::MoneyEvent;
use crate::pricing::{Pricing, Usage};
use crate::responder::{
    Conversation, Finish, Piece, ReplyStream, Sampling, StartFailure, ToolCall,
};
use crate::served::ServedModel;
use crate::store::{
    ChatOutcome, ChatRecord, Hold, HoldOutcome, HoldRequest, ReleaseReason, SavedChat,
};

/// Kept free before Lambda's deadline to settle, to record what is owed
/// should the settle not commit, and to end the answer: a model still
/// writing then is cut off (`finish_reason: "length"`) and charged for what
/// it wrote.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// Of that margin, what recording an owed chat needs once the settle gives
/// up: one write to one item.
const RECORD_MARGIN: Duration = Duration::from_millis(1500);

/// Rounds of the store's own retries for a settle when the invocation has
/// no deadline (`make run`, a test): a deadline bounds them otherwise.
const SETTLE_ROUNDS_WITHOUT_DEADLINE: u32 = 3;

/// One request for a reply: which model, what it is asked, what the chat
/// is saved as, and under which key.
pub struct Call<'a> {
    /// The catalog's model, with what answers it and its price.
    pub model: &'a ServedModel,
    pub conversation: &'a Conversation,
    /// `max_tokens` is what the caller asked for, at most the model's cap;
    /// a metered call asks for no more than fits before the cut-off.
    pub sampling: &'a Sampling,
    /// What the chat is saved as: the (last) user message.
    pub message: &'a ChatMessage,
    pub key: Option<&'a KeyedRequest>,
    pub deadline: Deadline,
    /// For the metrics of the rare events on the way.
    pub function: &'static str,
}

/// A reply paid for: saved as a chat, with what it cost.
#[derive(Debug)]
pub struct Settled {
    pub chat_id: uuid::Uuid,
    pub created: Timestamp,
    pub text: String,
    /// The text as the model wrote it, piece by piece.
    pub pieces: Vec<String>,
    /// The tools the model called, in order.
    pub tool_calls: Vec<ToolCall>,
    pub finish: Finish,
    /// What it was charged for.
    pub usage: Usage,
    pub cost: Credits,
    /// The model failed after it had read the request: what the client is
    /// told, charged all the same.
    pub failure: Option<ApiError>,
}

impl Settled {
    /// A settled call that failed with no text to show: the failure, with
    /// what it was charged.
    pub fn charged_failure(self) -> Result<Settled, ApiError> {
        match self.failure {
            Some(failure) if self.text.is_empty() && self.tool_calls.is_empty() => {
                Err(ApiError::ChargedFailure {
                    failure: Box::new(failure),
                    charged: self.cost,
                })
            }
            failure => Ok(Settled { failure, ..self }),
        }
    }
}

/// What a request for a reply came to.
#[derive(Debug)]
pub enum Billed {
    Charged(Settled),
    /// The key was answered before: that reply, and nothing charged.
    Replayed(SavedChat),
}

/// Where a streamed reply goes as it comes: a client's stream.
pub trait Sink: Send {
    /// Sends `text` on; `false` once the client has gone.
    fn text<'a>(&'a mut self, text: &'a str) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

    /// Sends on a piece of the `index`-th tool call (from 0): its start
    /// (`ToolDelta::Start`) or more of its arguments; `false` once the
    /// client has gone.
    fn tool_call<'a>(
        &'a mut self,
        index: usize,
        delta: ToolDelta<'a>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// A piece of a tool call as it is streamed.
#[derive(Clone, Copy, Debug)]
pub enum ToolDelta<'a> {
    Start { id: &'a str, name: &'a str },
    Arguments(&'a str),
}

/// A reply from the free responder, made first and then charged and saved
/// in one transaction. A reply that ended is charged its price whether or
/// not it has text (a stop sequence at its start, say): the same rule as a
/// model's reply with usage and no text.
pub async fn free(app: &App, token: &VerifiedToken, call: &Call<'_>) -> Result<Billed, ApiError> {
    let reply = call
        .model
        .responder
        .stream(call.conversation, call.sampling)
        .await
        .map_err(|failure| failure.error)?;
    let produced = Produced::read(reply, None, None).await;
    if let Some(error) = produced.failure {
        return Err(error);
    }
    let usage = produced.usage.unwrap_or_default();
    let created = Timestamp::now();
    let chat_id = uuid::Uuid::now_v7();
    let finish = produced.finish.unwrap_or(Finish::Stop);
    let cost = call.model.pricing.charge(usage);
    let record = ChatRecord {
        chat_id,
        message: call.message,
        model: &call.model.id,
        response: &produced.text,
        replay: None,
        tool_calls: &produced.tool_calls,
        cost,
        usage,
        finish,
        created,
    };
    // Boxed, as every store call here: the SDK's futures are large, and a
    // handler's future holds all of them at once otherwise.
    let outcome = Box::pin(
        app.store
            .charge_and_save_chat(token, &record, call.key, call.deadline),
    )
    .await?;
    Ok(match outcome {
        ChatOutcome::Saved => Billed::Charged(Settled {
            chat_id,
            created,
            text: produced.text,
            pieces: produced.pieces,
            tool_calls: produced.tool_calls,
            finish,
            usage,
            cost,
            failure: None,
        }),
        ChatOutcome::Replayed(saved) => Billed::Replayed(saved),
    })
}

/// A paid model's call under way: its hold taken, its reply started.
#[must_use = "an open call holds the caller's tokens until it is finished"]
pub struct OpenCall {
    hold: Hold,
    reply: Box<dyn ReplyStream>,
    /// When the model is cut off to settle in time.
    cutoff: Option<Instant>,
    input_bound: usize,
    max_tokens: u32,
    pricing: Pricing,
    chat_id: uuid::Uuid,
}

/// What starting a metered call came to.
pub enum Opened {
    /// The model is writing; [`OpenCall::finish`] reads and settles it.
    Started(OpenCall),
    /// Over already: replayed under its key, or charged for a model that
    /// failed after reading the request.
    Done(Billed),
}

/// Holds the most `call` can cost and starts the model. Refusals (the
/// session, the balance, the caps, a model that processed nothing) leave
/// nothing taken.
pub async fn open(app: &App, token: &VerifiedToken, call: &Call<'_>) -> Result<Opened, ApiError> {
    let cutoff = call
        .deadline
        .instant()
        .map(|at| at.checked_sub(SETTLE_MARGIN).unwrap_or(at));
    let sampling = fitted(call.sampling, cutoff, app.config.model_tokens_per_second)?;
    let input_bound = call.conversation.input_bound();
    // The prices of this call, kept with it to its settle: a catalog that
    // changes meanwhile changes nothing of it.
    let pricing = call.model.pricing;
    let now = Timestamp::now();
    let request = HoldRequest {
        amount: pricing.hold(input_bound, sampling.max_tokens),
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
        Ok(HoldOutcome::Replayed(saved)) => return Ok(Opened::Done(Billed::Replayed(saved))),
        Err(error) => {
            // A failure of the store itself leaves the hold in doubt: give
            // it back now, before any model is called, should it have
            // committed after all. A refusal took nothing.
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
    let open_call = |reply| OpenCall {
        hold: hold.clone(),
        reply,
        cutoff,
        input_bound,
        max_tokens: sampling.max_tokens,
        pricing,
        chat_id: uuid::Uuid::now_v7(),
    };
    let start = call.model.responder.stream(call.conversation, &sampling);
    // The first piece too must come before the cut-off: a model still
    // silent then had read the request, and is charged for that.
    let started = match cutoff {
        None => start.await,
        Some(at) => tokio::time::timeout_at(at.into(), start)
            .await
            .unwrap_or_else(|_| {
                Err(StartFailure::after_reading(ApiError::ModelUnavailable(
                    "the model wrote nothing before the cut-off".into(),
                )))
            }),
    };
    match started {
        Ok(reply) => Ok(Opened::Started(open_call(reply))),
        Err(StartFailure {
            error,
            read_input: false,
        }) => {
            Box::pin(release(
                app,
                &hold,
                ReleaseReason::ModelRefused,
                call.deadline,
            ))
            .await;
            Err(error)
        }
        Err(StartFailure {
            error,
            read_input: true,
        }) => {
            let produced = Produced {
                failure: Some(error),
                ..Produced::default()
            };
            let failed = open_call(Box::new(Ended));
            Ok(Opened::Done(Billed::Charged(
                Box::pin(failed.settle(app, call, produced)).await,
            )))
        }
    }
}

/// `sampling` asking for no more than the model can write before the
/// cut-off at `tokens_per_second`: a full reply always fits, and the hold
/// is no larger than what can be written. A 503 when no time is left.
fn fitted(
    sampling: &Sampling,
    cutoff: Option<Instant>,
    tokens_per_second: u32,
) -> Result<Sampling, ApiError> {
    let Some(cutoff) = cutoff else {
        return Ok(sampling.clone());
    };
    let left = cutoff.saturating_duration_since(Instant::now()).as_secs();
    let fits = left.saturating_mul(u64::from(tokens_per_second));
    if fits == 0 {
        // Nothing was held: the model is, in effect, out of reach now.
        return Err(ApiError::ModelUnavailable(
            "too little time left in the invocation for a model call".into(),
        ));
    }
    Ok(Sampling {
        max_tokens: sampling
            .max_tokens
            .min(u32::try_from(fits).unwrap_or(u32::MAX)),
        ..sampling.clone()
    })
}

impl OpenCall {
    /// The id the chat will be saved under: a stream names it from its
    /// first chunk.
    pub fn chat_id(&self) -> uuid::Uuid {
        self.chat_id
    }

    /// Reads the reply to its end, to the cut-off, or until the client
    /// goes (each piece to `sink` as it comes), then settles it.
    pub async fn finish(
        mut self,
        app: &App,
        call: &Call<'_>,
        sink: Option<&mut dyn Sink>,
    ) -> Settled {
        let reply = std::mem::replace(&mut self.reply, Box::new(Ended));
        let produced = Produced::read(reply, self.cutoff, sink).await;
        Box::pin(self.settle(app, call, produced)).await
    }

    /// Settles the hold to what `produced` costs and saves the chat; if
    /// that cannot commit in time, records what is owed on the hold.
    async fn settle(self, app: &App, call: &Call<'_>, produced: Produced) -> Settled {
        let usage = self.charged_usage(&produced);
        let cost = self.pricing.cost(usage, self.hold.amount);
        // A reply that failed midway is a short one (a cut for time says
        // so itself).
        let finish = produced.finish.unwrap_or(if produced.failure.is_some() {
            Finish::Length
        } else {
            Finish::Stop
        });
        let created = Timestamp::now();
        let record = ChatRecord {
            chat_id: self.chat_id,
            message: call.message,
            model: &call.model.id,
            response: &produced.text,
            replay: None,
            tool_calls: &produced.tool_calls,
            cost,
            usage,
            finish,
            created,
        };
        let cost = match Box::pin(settle_in_time(app, &self.hold, &record, call.deadline)).await {
            Ok(true) => cost,
            Ok(false) => {
                // The sweeper came first: it charged the whole hold.
                tracing::warn!(hold = %self.hold.hold_id, "a hold was swept before its settle");
                self.hold.amount
            }
            Err(error) => {
                let during = (call.function, call.deadline);
                Box::pin(defer(app, during, &self.hold, &record, &error)).await;
                cost
            }
        };
        Settled {
            chat_id: self.chat_id,
            created,
            text: produced.text,
            pieces: produced.pieces,
            tool_calls: produced.tool_calls,
            finish,
            usage,
            cost,
            failure: produced.failure,
        }
    }

    /// What the reply is charged for: what the model reported or, when its
    /// report did not come (it failed midway, the client left, it was cut
    /// off for time), the bounds of what it read and wrote: the input's
    /// bound, and the UTF-8 size of everything it wrote (no common
    /// tokenizer makes more tokens than bytes) up to `max_tokens`.
    fn charged_usage(&self, produced: &Produced) -> Usage {
        if let (Some(usage), false, false) = (produced.usage, produced.hung_up, produced.cut) {
            return usage;
        }
        let calls: usize = produced
            .tool_calls
            .iter()
            .map(|c| c.name.len() + c.arguments.len())
            .sum();
        let written = (produced.text.len() + produced.hidden_bytes + calls) as u64;
        Usage::bound(self.input_bound, written.min(u64::from(self.max_tokens)))
    }
}

/// Settles within the deadline: rounds of the store's retries until only
/// the record's margin is left. `Ok(false)`: the hold was closed first.
async fn settle_in_time(
    app: &App,
    hold: &Hold,
    record: &ChatRecord<'_>,
    deadline: Deadline,
) -> Result<bool, ApiError> {
    in_time(deadline, "settle", |by| app.store.settle(hold, record, by)).await
}

/// Rounds of `close` (a transaction with the store's own retries) until it
/// is decided or only the record's margin is left: a round is not begun
/// with less than one attempt's time in it.
async fn in_time<F, Fut>(deadline: Deadline, what: &str, close: F) -> Result<bool, ApiError>
where
    F: Fn(Deadline) -> Fut,
    Fut: std::future::Future<Output = Result<bool, ApiError>>,
{
    let by = deadline
        .instant()
        .map(|at| Deadline::at(at.checked_sub(RECORD_MARGIN).unwrap_or(at)))
        .unwrap_or_default();
    let mut round = 0;
    loop {
        round += 1;
        match Box::pin(close(by)).await {
            Ok(closed) => return Ok(closed),
            Err(error) => {
                let more = match by.budget() {
                    Some(left) => left > LEAST_ATTEMPT,
                    None => round < SETTLE_ROUNDS_WITHOUT_DEADLINE,
                };
                if !more || !matches!(error, ApiError::Unavailable(_)) {
                    return Err(error);
                }
                tracing::warn!(round, error = %error, "a {what} did not commit; trying again");
            }
        }
    }
}

/// The time one more attempt needs: less is not worth a round.
const LEAST_ATTEMPT: Duration = Duration::from_millis(300);

/// A one-item write the sweeper reads, bounded by what is left of
/// `deadline` (or the SDK's own timeout without one).
async fn before<T>(
    deadline: Deadline,
    write: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match deadline.budget() {
        None => write.await,
        Some(left) => tokio::time::timeout(left, write).await.unwrap_or_else(|_| {
            Err(ApiError::Unavailable(
                "the invocation's deadline came first".into(),
            ))
        }),
    }
}

/// A settle that could not commit: what the chat owes goes on the hold for
/// the sweeper. Should even that fail, the sweeper charges the whole hold.
async fn defer(
    app: &App,
    (function, deadline): (&'static str, Deadline),
    hold: &Hold,
    record: &ChatRecord<'_>,
    why: &ApiError,
) {
    tracing::error!(hold = %hold.hold_id, error = %why, "a settle did not commit; the sweeper will charge what is owed");
    app.count(function, MoneyEvent::SettleFailed, 1);
    if let Err(error) = before(deadline, app.store.record_owed(hold, record)).await {
        tracing::error!(hold = %hold.hold_id, error = %error, "what a chat owes could not be recorded; the sweeper will charge its whole hold");
        app.count(function, MoneyEvent::OwedUnrecorded, 1);
    }
}

/// Gives back a hold the model did no work on, tried as a settle is; if it
/// cannot commit, the hold is marked as refused, so the sweeper gives it
/// back too rather than charging it.
async fn release(app: &App, hold: &Hold, reason: ReleaseReason, deadline: Deadline) {
    let released = in_time(deadline, "release", |by| {
        app.store.release(hold, reason, by)
    })
    .await;
    if let Err(e) = released {
        tracing::error!(error = %e, hold = %hold.hold_id, "a hold could not be released; marked for the sweeper to give back");
        if let Err(e) = before(deadline, app.store.mark_refused(hold)).await {
            tracing::error!(error = %e, hold = %hold.hold_id, "a refused call's hold could not be marked; the sweeper will charge it");
            app.count("billing", MoneyEvent::OwedUnrecorded, 1);
        }
    }
}

/// A reply with nothing more to give.
struct Ended;

impl ReplyStream for Ended {
    fn next(&mut self) -> crate::responder::NextPiece<'_> {
        Box::pin(async { Ok(None) })
    }
}

/// What the model wrote, and how it ended.
#[derive(Debug, Default)]
pub struct Produced {
    pub text: String,
    pub pieces: Vec<String>,
    /// The tools the model called, arguments as written so far.
    pub tool_calls: Vec<ToolCall>,
    /// UTF-8 bytes of output that is neither text nor a tool call
    /// (reasoning).
    pub hidden_bytes: usize,
    pub finish: Option<Finish>,
    pub usage: Option<Usage>,
    /// The model failed midway (or before writing anything).
    pub failure: Option<ApiError>,
    /// The client went away: the model was stopped there.
    pub hung_up: bool,
    /// Cut off to settle before the deadline.
    pub cut: bool,
}

impl Produced {
    /// Reads the reply to its end, to `cutoff`, or until the client hangs
    /// up; each piece of text goes to `sink` as it comes. Dropping the
    /// reply stream at the end stops the model.
    pub async fn read(
        mut reply: Box<dyn ReplyStream>,
        cutoff: Option<Instant>,
        mut sink: Option<&mut dyn Sink>,
    ) -> Self {
        let mut produced = Produced::default();
        loop {
            let next = match cutoff {
                Some(at) => match tokio::time::timeout_at(at.into(), reply.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::warn!("the model was cut off to settle before the deadline");
                        produced.cut = true;
                        produced.finish = Some(Finish::Length);
                        break;
                    }
                },
                None => reply.next().await,
            };
            match next {
                Ok(Some(Piece::Text(text))) => {
                    produced.text.push_str(&text);
                    let gone = match sink.as_mut() {
                        Some(sink) => !sink.text(&text).await,
                        None => false,
                    };
                    produced.pieces.push(text);
                    if gone {
                        produced.hung_up = true;
                        break;
                    }
                }
                Ok(Some(Piece::Hidden(bytes))) => produced.hidden_bytes += bytes,
                Ok(Some(Piece::ToolCall { id, name })) => {
                    let index = produced.tool_calls.len();
                    let gone = match sink.as_mut() {
                        Some(sink) => {
                            let delta = ToolDelta::Start {
                                id: &id,
                                name: &name,
                            };
                            !sink.tool_call(index, delta).await
                        }
                        None => false,
                    };
                    produced.tool_calls.push(ToolCall {
                        id,
                        name,
                        arguments: String::new(),
                    });
                    if gone {
                        produced.hung_up = true;
                        break;
                    }
                }
                Ok(Some(Piece::ToolInput(arguments))) => {
                    // Arguments before any call's start belong to none: they
                    // were written all the same, and count as hidden output.
                    let Some(index) = produced.tool_calls.len().checked_sub(1) else {
                        produced.hidden_bytes += arguments.len();
                        continue;
                    };
                    let gone = match sink.as_mut() {
                        Some(sink) => {
                            !sink
                                .tool_call(index, ToolDelta::Arguments(&arguments))
                                .await
                        }
                        None => false,
                    };
                    produced.tool_calls[index].arguments.push_str(&arguments);
                    if gone {
                        produced.hung_up = true;
                        break;
                    }
                }
                Ok(Some(Piece::Finished { finish, usage })) => {
                    produced.finish = Some(finish);
                    produced.usage = usage;
                }
                Ok(None) => break,
                Err(error) => {
                    produced.failure = Some(error);
                    break;
                }
            }
        }
        produced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::UsagePrices;

    fn open_call(max_tokens: u32, input_bound: usize) -> OpenCall {
        OpenCall {
            hold: Hold {
                username: crate::domain::Username::parse("alice").unwrap(),
                hold_id: "ledger#hold#x".into(),
                amount: Credits::new(1000),
                marker_id: None,
                counted: true,
                key: None,
                model: "m".into(),
            },
            reply: Box::new(Ended),
            cutoff: None,
            input_bound,
            max_tokens,
            pricing: Pricing::Usage(UsagePrices::plain(1000, 1000)),
            chat_id: uuid::Uuid::nil(),
        }
    }

    fn produced(text: &str, hidden: usize, usage: Option<Usage>) -> Produced {
        Produced {
            text: text.into(),
            hidden_bytes: hidden,
            usage,
            ..Produced::default()
        }
    }

    #[test]
    fn a_reported_usage_is_charged_as_reported() {
        let call = open_call(100, 10);
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Default::default()
        };
        assert_eq!(call.charged_usage(&produced("abc", 0, Some(usage))), usage);
    }

    #[test]
    fn without_a_report_the_bound_counts_text_and_hidden_output_up_to_max_tokens() {
        let call = open_call(100, 10);
        let bound = call.charged_usage(&produced("abcd", 6, None));
        assert_eq!(bound, Usage::bound(10, 10));
        let capped = call.charged_usage(&produced(&"x".repeat(500), 0, None));
        assert_eq!(capped, Usage::bound(10, 100));
    }

    #[test]
    fn without_a_report_a_tool_calls_name_and_arguments_count_as_output() {
        let call = open_call(100, 10);
        let p = Produced {
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into(),
            }],
            ..produced("ok", 0, None)
        };
        let written = "ok".len() + "weather".len() + "{\"city\":\"Oslo\"}".len();
        assert_eq!(call.charged_usage(&p), Usage::bound(10, written as u64));
    }

    #[test]
    fn a_hang_up_or_a_cut_is_charged_the_bound_even_with_a_usage() {
        let call = open_call(100, 10);
        let usage = Some(Usage {
            input_tokens: 1,
            output_tokens: 1,
            ..Default::default()
        });
        for (hung_up, cut) in [(true, false), (false, true)] {
            let p = Produced {
                hung_up,
                cut,
                ..produced("abc", 0, usage)
            };
            assert_eq!(call.charged_usage(&p), Usage::bound(10, 3));
        }
    }

    #[test]
    fn a_call_is_never_asked_for_more_than_fits_before_the_cutoff() {
        let sampling = Sampling {
            max_tokens: 4096,
            ..Sampling::default()
        };
        let cutoff = Instant::now() + Duration::from_millis(10_500);
        let asked = fitted(&sampling, Some(cutoff), 50).unwrap().max_tokens;
        // 10 whole seconds left at 50 a second (a slow machine may lose one).
        assert!((450..=500).contains(&asked), "{asked}");
        assert_eq!(fitted(&sampling, None, 50).unwrap().max_tokens, 4096);
        let gone = Instant::now();
        assert_eq!(
            fitted(&sampling, Some(gone), 50).unwrap_err().code(),
            "model_unavailable"
        );
    }

    #[test]
    fn a_failure_without_text_is_a_charged_error_and_with_text_a_reply() {
        let settled = |text: &str| Settled {
            chat_id: uuid::Uuid::nil(),
            created: Timestamp::now(),
            text: text.into(),
            pieces: vec![],
            tool_calls: vec![],
            finish: Finish::Length,
            usage: Usage::default(),
            cost: Credits::new(9),
            failure: Some(ApiError::ModelUnavailable("stalled".into())),
        };
        let error = settled("").charged_failure().unwrap_err();
        assert_eq!(error.code(), "model_unavailable");
        assert_eq!(error.body()["charged"], 9);
        assert!(settled("partial").charged_failure().is_ok());
    }
}
