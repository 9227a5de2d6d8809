//! ConverseStream: a reply to a whole conversation, piece by piece.
//!
//! Bedrock answers with a response head, then events: `messageStart`, a
//! `contentBlockDelta` per piece of text, `contentBlockStop`, `messageStop`
//! (why it ended), and `metadata` (the usage). A failure after the head is
//! an exception event, which the SDK's `recv()` returns as an
//! `SdkError::ServiceError` whose raw form is the event, not an HTTP
//! response.

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse_stream::ConverseStreamError;
use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, AutoToolChoice, CachePointBlock, CachePointType, ContentBlock,
    ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseStreamMetadataEvent,
    ConverseStreamOutput, ImageBlock, ImageFormat as BedrockImageFormat, ImageSource,
    InferenceConfiguration, Message, ReasoningContentBlockDelta, SpecificToolChoice, StopReason,
    SystemContentBlock, Tool as BedrockTool, ToolConfiguration, ToolInputSchema, ToolResultBlock,
    ToolResultContentBlock, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::event_stream::RawMessage;
use aws_smithy_types::{Blob, Document, Number};
use chat_core::responder::{
    Conversation, Finish, ImageFormat, NextPiece, Piece, ReplyStream, Role, Sampling, StartFailure,
    ToolChoice,
};
use chat_core::ApiError;
use serde_json::Value;

use crate::{model_failure, usage_of, BedrockResponder, ErrorCode, RawStatus, REFUSAL_CODES};

type Events = EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>;

impl ErrorCode for ConverseStreamError {
    fn error_code(&self) -> Option<&str> {
        self.code()
    }
}

impl ErrorCode for ConverseStreamOutputError {
    // An exception event names its type in its `:exception-type` header,
    // which the SDK turns into the variant; `code()` reads the payload,
    // which names it only if the service chose to.
    fn error_code(&self) -> Option<&str> {
        match self {
            ConverseStreamOutputError::ThrottlingException(_) => Some("ThrottlingException"),
            ConverseStreamOutputError::ServiceUnavailableException(_) => {
                Some("ServiceUnavailableException")
            }
            ConverseStreamOutputError::InternalServerException(_) => {
                Some("InternalServerException")
            }
            ConverseStreamOutputError::ModelStreamErrorException(_) => {
                Some("ModelStreamErrorException")
            }
            ConverseStreamOutputError::ValidationException(_) => Some("ValidationException"),
            other => other.code(),
        }
    }
}

impl RawStatus for RawMessage {
    fn status(&self) -> Option<u16> {
        None
    }
}

/// Starts the reply and waits for its first piece. A failure before the
/// response head, or an exception that says the model processed nothing
/// (throttled, invalid, forbidden), is a refusal, which is free; a model
/// that accepted the request and then stalled or failed had read it.
pub(crate) async fn converse_stream(
    responder: &BedrockResponder,
    conversation: &Conversation,
    sampling: &Sampling,
) -> Result<Box<dyn ReplyStream>, StartFailure> {
    // The SDK's operation timeout ends with the response head; the rest of
    // the same budget is what the model has to write its first piece.
    let deadline = Instant::now() + responder.timeout;
    let output = responder
        .client
        .converse_stream()
        .model_id(&responder.model_id)
        .set_system(system_of(conversation, responder.cache))
        .set_messages(Some(
            messages_of(conversation).map_err(StartFailure::refused)?,
        ))
        .inference_config(inference_of(sampling, responder.max_tokens))
        .set_tool_config(tool_config_of(conversation).map_err(StartFailure::refused)?)
        .send()
        .await
        .map_err(|err| StartFailure::refused(model_failure(err)))?;
    let mut stream = BedrockStream {
        events: Some(output.stream),
        ready: None,
        progress: Progress::default(),
        model_id: responder.model_id.clone(),
        timeout: responder.timeout,
    };
    stream.ready = stream
        .advance(Some(deadline))
        .await
        .map_err(|failed| match failed.refused {
            true => StartFailure::refused(failed.error),
            false => StartFailure::after_reading(failed.error),
        })?;
    Ok(Box::new(stream))
}

/// `None` rather than an empty list: Bedrock takes no system prompt then.
/// With `cache`, a cache point follows the system prompt, so a model that
/// caches prompts reads it from its cache on the next call (priced as a
/// cache read by the catalog).
fn system_of(conversation: &Conversation, cache: bool) -> Option<Vec<SystemContentBlock>> {
    if conversation.system.is_empty() {
        return None;
    }
    let mut blocks: Vec<SystemContentBlock> = conversation
        .system
        .iter()
        .map(|text| SystemContentBlock::Text(text.clone()))
        .collect();
    if cache {
        // A built block with its one required field set cannot fail.
        if let Ok(point) = CachePointBlock::builder()
            .r#type(CachePointType::Default)
            .build()
        {
            blocks.push(SystemContentBlock::CachePoint(point));
        }
    }
    Some(blocks)
}

/// Each turn as one message: a user turn's tool results first (Converse
/// wants them before any text), then its images, then its text; an assistant turn's text,
/// then its tool calls. An empty text is left out: Converse refuses blank
/// text blocks, and a turn of tool blocks alone needs none.
fn messages_of(conversation: &Conversation) -> Result<Vec<Message>, ApiError> {
    conversation
        .turns
        .iter()
        .map(|turn| {
            let role = match turn.role {
                Role::User => ConversationRole::User,
                Role::Assistant => ConversationRole::Assistant,
            };
            let mut content = Vec::new();
            for result in &turn.tool_results {
                let block = ToolResultBlock::builder()
                    .tool_use_id(&result.call_id)
                    .content(ToolResultContentBlock::Text(result.text.clone()))
                    .build()
                    .map_err(ApiError::internal)?;
                content.push(ContentBlock::ToolResult(block));
            }
            for image in &turn.images {
                let format = match image.format {
                    ImageFormat::Png => BedrockImageFormat::Png,
                    ImageFormat::Jpeg => BedrockImageFormat::Jpeg,
                    ImageFormat::Gif => BedrockImageFormat::Gif,
                    ImageFormat::Webp => BedrockImageFormat::Webp,
                };
                let block = ImageBlock::builder()
                    .format(format)
                    .source(ImageSource::Bytes(Blob::new(image.bytes.clone())))
                    .build()
                    .map_err(ApiError::internal)?;
                content.push(ContentBlock::Image(block));
            }
            if !turn.text.is_empty() {
                content.push(ContentBlock::Text(turn.text.clone()));
            }
            for call in &turn.tool_calls {
                let block = ToolUseBlock::builder()
                    .tool_use_id(&call.id)
                    .name(&call.name)
                    .input(arguments_document(&call.arguments))
                    .build()
                    .map_err(ApiError::internal)?;
                content.push(ContentBlock::ToolUse(block));
            }
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
                .map_err(ApiError::internal)
        })
        .collect()
}

/// The tools offered and the choice among them; `None` without tools.
fn tool_config_of(conversation: &Conversation) -> Result<Option<ToolConfiguration>, ApiError> {
    if conversation.tools.is_empty() {
        return Ok(None);
    }
    let mut config = ToolConfiguration::builder();
    for tool in &conversation.tools {
        let spec = ToolSpecification::builder()
            .name(&tool.name)
            .set_description(tool.description.clone())
            .input_schema(ToolInputSchema::Json(document_of(&tool.parameters)))
            .build()
            .map_err(ApiError::internal)?;
        config = config.tools(BedrockTool::ToolSpec(spec));
    }
    let choice = match &conversation.tool_choice {
        ToolChoice::Auto => {
            aws_sdk_bedrockruntime::types::ToolChoice::Auto(AutoToolChoice::builder().build())
        }
        ToolChoice::Required => {
            aws_sdk_bedrockruntime::types::ToolChoice::Any(AnyToolChoice::builder().build())
        }
        ToolChoice::Named(name) => aws_sdk_bedrockruntime::types::ToolChoice::Tool(
            SpecificToolChoice::builder()
                .name(name)
                .build()
                .map_err(ApiError::internal)?,
        ),
    };
    config
        .tool_choice(choice)
        .build()
        .map(Some)
        .map_err(ApiError::internal)
}

/// A tool call's arguments as Converse takes them: the JSON object the
/// model wrote. Text that is not a JSON object (a client may send any
/// string back) goes as an empty object: Converse takes objects only, and
/// the call's id still ties it to its result.
fn arguments_document(arguments: &str) -> Document {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => document_of(&value),
        _ => Document::Object(Default::default()),
    }
}

/// JSON as a Smithy document, number for number.
fn document_of(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(document_of).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), document_of(v)))
                .collect(),
        ),
    }
}

/// Only what the caller set: Bedrock's defaults are the model's own. The
/// reply is never allowed more than the responder's cap, which is what the
/// hold was taken for; 0 (unset) means the cap.
fn inference_of(sampling: &Sampling, cap: i32) -> InferenceConfiguration {
    let asked = i32::try_from(sampling.max_tokens).unwrap_or(i32::MAX);
    let max_tokens = if asked == 0 { cap } else { asked.min(cap) };
    InferenceConfiguration::builder()
        .max_tokens(max_tokens)
        .set_temperature(sampling.temperature)
        .set_top_p(sampling.top_p)
        .set_stop_sequences((!sampling.stop.is_empty()).then(|| sampling.stop.clone()))
        .build()
}

/// Bedrock's reasons in OpenAI's terms. A full context window cut the
/// reply short just as `max_tokens` does, so it is `length` too.
fn finish_of(reason: &StopReason) -> Finish {
    match reason {
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => Finish::Length,
        StopReason::GuardrailIntervened | StopReason::ContentFiltered => Finish::ContentFilter,
        StopReason::ToolUse => Finish::ToolCalls,
        _ => Finish::Stop,
    }
}

/// What the events so far add up to. Kept apart from the connection so the
/// order rules can be tested on events alone.
#[derive(Debug, Default)]
struct Progress {
    stop: Option<StopReason>,
    /// Bedrock sends it after `messageStop`; kept if it comes first.
    metadata: Option<ConverseStreamMetadataEvent>,
}

impl Progress {
    /// The piece an event gives the caller, if any.
    fn on_event(&mut self, event: ConverseStreamOutput) -> Option<Piece> {
        match event {
            ConverseStreamOutput::ContentBlockDelta(block) => match block.delta {
                Some(ContentBlockDelta::Text(text)) if !text.is_empty() => Some(Piece::Text(text)),
                // Reasoning and a tool's input are not part of a chat
                // reply, but the model wrote them, and they count toward
                // what a reply without a usage report is charged.
                Some(ContentBlockDelta::ReasoningContent(reasoning)) => {
                    let bytes = match reasoning {
                        ReasoningContentBlockDelta::Text(text) => text.len(),
                        ReasoningContentBlockDelta::RedactedContent(blob) => blob.as_ref().len(),
                        _ => 0,
                    };
                    (bytes > 0).then_some(Piece::Hidden(bytes))
                }
                Some(ContentBlockDelta::ToolUse(tool)) if !tool.input.is_empty() => {
                    Some(Piece::ToolInput(tool.input))
                }
                // Citations and the rest add no output of their own.
                _ => None,
            },
            ConverseStreamOutput::ContentBlockStart(start) => match start.start {
                Some(ContentBlockStart::ToolUse(tool)) => Some(Piece::ToolCall {
                    id: tool.tool_use_id,
                    name: tool.name,
                }),
                _ => None,
            },
            ConverseStreamOutput::MessageStop(stop) => {
                self.stop = Some(stop.stop_reason);
                self.metadata.is_some().then(|| self.finished())
            }
            ConverseStreamOutput::Metadata(metadata) => {
                self.metadata = Some(metadata);
                self.stop.is_some().then(|| self.finished())
            }
            _ => None,
        }
    }

    /// The last piece when the stream ends without another event: the end
    /// without its usage if the model said it was done, a failure if not.
    fn on_end(&self) -> Result<Piece, ApiError> {
        if self.stop.is_some() {
            Ok(self.finished())
        } else {
            Err(ApiError::ModelError(
                "the model's stream ended before the model stopped".into(),
            ))
        }
    }

    fn finished(&self) -> Piece {
        Piece::Finished {
            finish: self.stop.as_ref().map_or(Finish::Stop, finish_of),
            usage: self.metadata.as_ref().and_then(|m| m.usage()).map(usage_of),
        }
    }
}

struct BedrockStream {
    /// `None` once the reply is over or failed: dropping the receiver is
    /// what closes the connection and stops the model.
    events: Option<Events>,
    /// The piece [`converse_stream`] waited for, not yet handed out.
    ready: Option<Piece>,
    progress: Progress,
    model_id: String,
    /// The longest wait for any one event: a stalled model is given up on
    /// rather than holding the caller (and the hold) until the function's
    /// own timeout.
    timeout: Duration,
}

/// A stream's failure, and whether it says the model processed nothing.
struct Failed {
    error: ApiError,
    refused: bool,
}

impl Failed {
    fn of<E: ErrorCode, R: RawStatus>(err: SdkError<E, R>) -> Self {
        let refused = match &err {
            SdkError::ServiceError(service) => service
                .err()
                .error_code()
                .is_some_and(|code| REFUSAL_CODES.contains(&code)),
            _ => false,
        };
        Failed {
            error: model_failure(err),
            refused,
        }
    }

    /// A failure of the model after it accepted the request.
    fn after_reading(error: ApiError) -> Self {
        Failed {
            error,
            refused: false,
        }
    }
}

impl BedrockStream {
    /// The next piece, waiting at most `timeout` for each event, or until
    /// `deadline` for all of them. Any failure ends the stream.
    async fn advance(&mut self, deadline: Option<Instant>) -> Result<Option<Piece>, Failed> {
        if let Some(piece) = self.ready.take() {
            return Ok(Some(piece));
        }
        while let Some(events) = self.events.as_mut() {
            let wait = deadline.map_or(self.timeout, |d| {
                d.saturating_duration_since(Instant::now())
            });
            let piece = match tokio::time::timeout(wait, events.recv()).await {
                Ok(Ok(Some(event))) => self.progress.on_event(event),
                Ok(Ok(None)) => {
                    self.events = None;
                    Some(self.progress.on_end().map_err(Failed::after_reading)?)
                }
                Ok(Err(err)) => {
                    self.events = None;
                    return Err(Failed::of(err));
                }
                Err(_) => {
                    self.events = None;
                    return Err(Failed::after_reading(ApiError::ModelUnavailable(
                        format!("the model sent nothing more within {wait:?}").into(),
                    )));
                }
            };
            if let Some(piece) = piece {
                if matches!(piece, Piece::Finished { .. }) {
                    self.events = None;
                    self.log_finished();
                }
                return Ok(Some(piece));
            }
        }
        Ok(None)
    }

    /// For cost and latency dashboards; never the conversation or the reply.
    fn log_finished(&self) {
        let usage = self.progress.metadata.as_ref().and_then(|m| m.usage());
        tracing::info!(
            model = %self.model_id,
            input_tokens = usage.map(|u| u.input_tokens()),
            output_tokens = usage.map(|u| u.output_tokens()),
            latency_ms = self
                .progress
                .metadata
                .as_ref()
                .and_then(|m| m.metrics())
                .map(|m| m.latency_ms()),
            stop_reason = self.progress.stop.as_ref().map(StopReason::as_str),
            "model streamed"
        );
    }
}

impl ReplyStream for BedrockStream {
    fn next(&mut self) -> NextPiece<'_> {
        Box::pin(async { self.advance(None).await.map_err(|failed| failed.error) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::error::SdkError;
    use aws_sdk_bedrockruntime::types::error::{
        InternalServerException, ModelStreamErrorException, ServiceUnavailableException,
        ThrottlingException, ValidationException,
    };
    use aws_sdk_bedrockruntime::types::{
        ContentBlockDeltaEvent, ContentBlockStopEvent, MessageStartEvent, MessageStopEvent,
        TokenUsage,
    };
    use chat_core::pricing::Usage;
    use chat_core::responder::Turn;

    fn delta(text: &str) -> ConverseStreamOutput {
        ConverseStreamOutput::ContentBlockDelta(
            ContentBlockDeltaEvent::builder()
                .content_block_index(0)
                .delta(ContentBlockDelta::Text(text.into()))
                .build()
                .unwrap(),
        )
    }

    fn stop(reason: StopReason) -> ConverseStreamOutput {
        ConverseStreamOutput::MessageStop(
            MessageStopEvent::builder()
                .stop_reason(reason)
                .build()
                .unwrap(),
        )
    }

    fn metadata(input: i32, output: i32) -> ConverseStreamOutput {
        ConverseStreamOutput::Metadata(
            ConverseStreamMetadataEvent::builder()
                .usage(
                    TokenUsage::builder()
                        .input_tokens(input)
                        .output_tokens(output)
                        .total_tokens(input + output)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
    }

    fn pieces_of(events: Vec<ConverseStreamOutput>) -> Vec<Piece> {
        let mut progress = Progress::default();
        events
            .into_iter()
            .filter_map(|e| progress.on_event(e))
            .collect()
    }

    #[test]
    fn text_deltas_become_pieces_and_metadata_after_the_stop_finishes_with_the_usage() {
        let pieces = pieces_of(vec![
            ConverseStreamOutput::MessageStart(
                MessageStartEvent::builder()
                    .role(ConversationRole::Assistant)
                    .build()
                    .unwrap(),
            ),
            delta("Hel"),
            delta(""),
            delta("lo"),
            ConverseStreamOutput::ContentBlockStop(
                ContentBlockStopEvent::builder()
                    .content_block_index(0)
                    .build()
                    .unwrap(),
            ),
            stop(StopReason::EndTurn),
            metadata(12, 2),
        ]);
        assert_eq!(
            pieces,
            [
                Piece::Text("Hel".into()),
                Piece::Text("lo".into()),
                Piece::Finished {
                    finish: Finish::Stop,
                    usage: Some(Usage {
                        input_tokens: 12,
                        output_tokens: 2,
                        ..Default::default()
                    })
                }
            ]
        );
    }

    #[test]
    fn a_tool_use_block_becomes_a_call_and_its_input_deltas_its_arguments() {
        use aws_sdk_bedrockruntime::types::{
            ContentBlockStartEvent, ToolUseBlockDelta, ToolUseBlockStart,
        };
        let start = ConverseStreamOutput::ContentBlockStart(
            ContentBlockStartEvent::builder()
                .content_block_index(1)
                .start(ContentBlockStart::ToolUse(
                    ToolUseBlockStart::builder()
                        .tool_use_id("tooluse_1")
                        .name("weather")
                        .build()
                        .unwrap(),
                ))
                .build()
                .unwrap(),
        );
        let input = |text: &str| {
            ConverseStreamOutput::ContentBlockDelta(
                ContentBlockDeltaEvent::builder()
                    .content_block_index(1)
                    .delta(ContentBlockDelta::ToolUse(
                        ToolUseBlockDelta::builder().input(text).build().unwrap(),
                    ))
                    .build()
                    .unwrap(),
            )
        };
        let pieces = pieces_of(vec![
            start,
            input("{\"city\":"),
            input("\"Oslo\"}"),
            stop(StopReason::ToolUse),
            metadata(20, 9),
        ]);
        assert_eq!(
            pieces[..3],
            [
                Piece::ToolCall {
                    id: "tooluse_1".into(),
                    name: "weather".into()
                },
                Piece::ToolInput("{\"city\":".into()),
                Piece::ToolInput("\"Oslo\"}".into()),
            ]
        );
        assert!(matches!(
            pieces[3],
            Piece::Finished {
                finish: Finish::ToolCalls,
                ..
            }
        ));
    }

    #[test]
    fn json_becomes_a_document_number_for_number_and_only_objects_are_arguments() {
        let value = serde_json::json!({"a": [1, -2, 2.5, "x", true, null]});
        let Document::Object(map) = document_of(&value) else {
            panic!("an object")
        };
        let Document::Array(items) = &map["a"] else {
            panic!("an array")
        };
        assert_eq!(items[0], Document::Number(Number::PosInt(1)));
        assert_eq!(items[1], Document::Number(Number::NegInt(-2)));
        assert_eq!(items[2], Document::Number(Number::Float(2.5)));
        assert_eq!(items[5], Document::Null);
        assert_eq!(
            arguments_document("[1]"),
            Document::Object(Default::default())
        );
        assert_eq!(
            arguments_document("not json"),
            Document::Object(Default::default())
        );
    }

    #[test]
    fn metadata_before_the_stop_finishes_at_the_stop() {
        let pieces = pieces_of(vec![metadata(3, 4), stop(StopReason::MaxTokens)]);
        assert_eq!(
            pieces,
            [Piece::Finished {
                finish: Finish::Length,
                usage: Some(Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                    ..Default::default()
                })
            }]
        );
    }

    #[test]
    fn an_end_after_the_stop_finishes_without_usage_and_one_before_it_is_a_model_error() {
        let mut progress = Progress::default();
        assert!(matches!(progress.on_end(), Err(ApiError::ModelError(_))));
        assert_eq!(progress.on_event(stop(StopReason::StopSequence)), None);
        assert_eq!(
            progress.on_end().unwrap(),
            Piece::Finished {
                finish: Finish::Stop,
                usage: None
            }
        );
    }

    #[test]
    fn stop_reasons_map_to_openai_finish_reasons() {
        for (reason, finish) in [
            (StopReason::EndTurn, Finish::Stop),
            (StopReason::StopSequence, Finish::Stop),
            (StopReason::ToolUse, Finish::ToolCalls),
            (StopReason::MaxTokens, Finish::Length),
            (StopReason::ModelContextWindowExceeded, Finish::Length),
            (StopReason::GuardrailIntervened, Finish::ContentFilter),
            (StopReason::ContentFiltered, Finish::ContentFilter),
            (StopReason::from("something_new"), Finish::Stop),
        ] {
            assert_eq!(finish_of(&reason), finish, "{reason:?}");
        }
    }

    #[test]
    fn exception_events_split_into_busy_and_failed() {
        let cases = [
            (
                ConverseStreamOutputError::ThrottlingException(
                    ThrottlingException::builder().build(),
                ),
                true,
            ),
            (
                ConverseStreamOutputError::ServiceUnavailableException(
                    ServiceUnavailableException::builder().build(),
                ),
                true,
            ),
            (
                ConverseStreamOutputError::ModelStreamErrorException(
                    ModelStreamErrorException::builder().build(),
                ),
                false,
            ),
            (
                ConverseStreamOutputError::InternalServerException(
                    InternalServerException::builder().build(),
                ),
                false,
            ),
            (
                ConverseStreamOutputError::ValidationException(
                    ValidationException::builder().build(),
                ),
                false,
            ),
        ];
        for (error, busy) in cases {
            let name = error.error_code().unwrap_or_default().to_owned();
            let mapped = model_failure(SdkError::service_error(error, RawMessage::invalid(None)));
            assert_eq!(
                matches!(mapped, ApiError::ModelUnavailable(_)),
                busy,
                "{name}"
            );
            if !busy {
                assert!(matches!(mapped, ApiError::ModelError(_)), "{name}");
            }
        }
    }

    #[test]
    fn the_conversation_goes_to_system_and_messages_in_order() {
        let conversation = Conversation {
            system: vec!["Be brief.".into(), "Answer in French.".into()],
            turns: vec![
                Turn::text(Role::User, "Hi"),
                Turn::text(Role::Assistant, "Salut"),
                Turn::text(Role::User, "How are you?"),
            ],
            ..Conversation::default()
        };
        assert_eq!(
            system_of(&conversation, false),
            Some(vec![
                SystemContentBlock::Text("Be brief.".into()),
                SystemContentBlock::Text("Answer in French.".into())
            ])
        );
        // With caching, a cache point after the system prompt, and only then.
        let cached = system_of(&conversation, true).unwrap();
        assert_eq!(cached.len(), 3);
        assert!(cached[2].is_cache_point());
        assert_eq!(system_of(&Conversation::default(), true), None);
        let messages = messages_of(&conversation).unwrap();
        let read: Vec<_> = messages
            .iter()
            .map(|m| (m.role().clone(), m.content()[0].as_text().unwrap().as_str()))
            .collect();
        assert_eq!(
            read,
            [
                (ConversationRole::User, "Hi"),
                (ConversationRole::Assistant, "Salut"),
                (ConversationRole::User, "How are you?"),
            ]
        );
        assert_eq!(system_of(&Conversation::default(), false), None);
    }

    #[test]
    fn only_the_sampling_that_was_set_is_sent_and_max_tokens_never_passes_the_cap() {
        let plain = inference_of(
            &Sampling {
                max_tokens: 100,
                ..Sampling::default()
            },
            1024,
        );
        assert_eq!(plain.max_tokens(), Some(100));
        assert_eq!(plain.temperature(), None);
        assert_eq!(plain.top_p(), None);
        assert_eq!(plain.stop_sequences(), &[] as &[String]);
        assert!(plain.stop_sequences.is_none());

        let full = inference_of(
            &Sampling {
                max_tokens: 5000,
                temperature: Some(0.5),
                top_p: Some(0.9),
                stop: vec!["END".into()],
            },
            1024,
        );
        assert_eq!(full.max_tokens(), Some(1024));
        assert_eq!(full.temperature(), Some(0.5));
        assert_eq!(full.top_p(), Some(0.9));
        assert_eq!(full.stop_sequences(), ["END"]);

        assert_eq!(
            inference_of(&Sampling::default(), 1024).max_tokens(),
            Some(1024)
        );
    }
}
