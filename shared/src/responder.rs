//! Where a chat's reply comes from. The product ships a fixed reply; a real
//! model plugs in by implementing [`Responder`] and nothing else changes.

use std::future::Future;
use std::pin::Pin;

use crate::error::ApiError;
use crate::pricing::{Usage, MESSAGE_OVERHEAD_TOKENS};

/// The reply of the original design, until a real model is wired in.
pub const DUMMY_RESPONSE: &str = "AI response";

/// Who said a turn of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn: who said it and what. A user turn may also carry the results
/// of the tools the assistant called before it (OpenAI's `tool` messages,
/// Converse's `toolResult` blocks), and an assistant turn the tools it
/// called (`tool_calls`, Converse's `toolUse` blocks); its text may then
/// be empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub tool_results: Vec<ToolResult>,
    /// Images in a user turn, before its text.
    pub images: Vec<Image>,
}

impl Turn {
    /// A turn of text alone.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Turn {
            role,
            text: text.into(),
            tool_calls: Vec::new(),
            tool_results: Vec::new(),
            images: Vec::new(),
        }
    }
}

/// An image sent to the model: its bytes, in a format Converse takes.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    pub format: ImageFormat,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Image {
    // Never the bytes: a log line is no place for a caller's picture.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Image({}, {} bytes)",
            self.format.media_type(),
            self.bytes.len()
        )
    }
}

/// The image formats Converse takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageFormat {
    pub fn media_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Gif => "image/gif",
            ImageFormat::Webp => "image/webp",
        }
    }

    /// The format a media type names (`image/jpg` too, as browsers write it).
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        match media_type.to_ascii_lowercase().as_str() {
            "image/png" => Some(ImageFormat::Png),
            "image/jpeg" | "image/jpg" => Some(ImageFormat::Jpeg),
            "image/gif" => Some(ImageFormat::Gif),
            "image/webp" => Some(ImageFormat::Webp),
            _ => None,
        }
    }

    /// Whether `bytes` begin as this format's files do.
    pub fn matches(self, bytes: &[u8]) -> bool {
        match self {
            ImageFormat::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            ImageFormat::Jpeg => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
            ImageFormat::Gif => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
            ImageFormat::Webp => {
                bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP"
            }
        }
    }
}

/// What one image may add to a call's input, in tokens, for its hold: the
/// bytes of an image say nothing of its size in tokens (a small PNG can be
/// a large picture), so each is bounded by a count above what Bedrock's
/// image models read from the largest image they take (Claude's is about
/// 1,600 tokens; Nova's about 2,600), and the model's usage is charged.
pub const IMAGE_INPUT_TOKENS: usize = 3_000;

/// A function the model may call: OpenAI's `tools` entry of type
/// `function`, Converse's `toolSpec`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema object for the arguments.
    pub parameters: serde_json::Value,
}

/// Which tool the model must call, if any. OpenAI's `"none"` never gets
/// here: the tools are then not offered to the model at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (`"auto"`).
    #[default]
    Auto,
    /// At least one tool (`"required"`, Converse's `any`).
    Required,
    /// This one (`{"type": "function", "function": {"name": ...}}`).
    Named(String),
}

/// A call the model made: its id, the function, and the arguments as the
/// model wrote them (JSON text, not checked: OpenAI's clients parse it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What a tool returned, for the call `call_id` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolResult {
    pub call_id: String,
    pub text: String,
}

/// What a model is asked on `/v1/chat/completions`: the system prompts,
/// then the turns, which alternate between user and assistant and start
/// and end with the user (Bedrock's Converse requires as much; the OpenAI
/// route merges consecutive turns of one role before it gets here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    pub system: Vec<String>,
    pub turns: Vec<Turn>,
    /// The functions offered to the model; none for a plain chat.
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
}

impl Conversation {
    /// `/chat/`'s conversation: one message from the user, nothing else.
    pub fn single(text: &str) -> Self {
        Conversation {
            turns: vec![Turn::text(Role::User, text)],
            ..Conversation::default()
        }
    }

    /// The UTF-8 size of everything sent to the model: what bounds the
    /// input part of a hold.
    /// Tool definitions, calls and results are sent too, and count.
    pub fn input_bytes(&self) -> usize {
        let system: usize = self.system.iter().map(String::len).sum();
        let turns: usize = self
            .turns
            .iter()
            .map(|t| {
                let calls: usize = t
                    .tool_calls
                    .iter()
                    .map(|c| c.id.len() + c.name.len() + c.arguments.len())
                    .sum();
                let results: usize = t
                    .tool_results
                    .iter()
                    .map(|r| r.call_id.len() + r.text.len())
                    .sum();
                t.text.len() + calls + results
            })
            .sum();
        let tools: usize = self
            .tools
            .iter()
            .map(|tool| {
                tool.name.len()
                    + tool.description.as_ref().map_or(0, String::len)
                    + tool.parameters.to_string().len()
            })
            .sum();
        system + turns + tools
    }

    /// The images sent, in all turns.
    pub fn images(&self) -> usize {
        self.turns.iter().map(|t| t.images.len()).sum()
    }

    /// System prompts, turns, tool definitions, calls and results: each is
    /// wrapped in markers by a chat template.
    fn parts(&self) -> usize {
        let calls: usize = self
            .turns
            .iter()
            .map(|t| t.tool_calls.len() + t.tool_results.len())
            .sum();
        self.system.len() + self.turns.len() + self.tools.len() + calls
    }

    /// What bounds the input part of a hold, before the fixed overhead
    /// pricing adds: the UTF-8 size of everything sent, and
    /// [`MESSAGE_OVERHEAD_TOKENS`] for each system prompt and turn (the role
    /// markers a chat template wraps each in), so many short messages
    /// cannot be read for less than they cost.
    pub fn input_bound(&self) -> usize {
        self.input_bytes()
            + MESSAGE_OVERHEAD_TOKENS * self.parts()
            + IMAGE_INPUT_TOKENS * self.images()
    }

    /// Every text sent to the model, system prompts first, then each
    /// turn's text, tool results and tool-call arguments.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.system
            .iter()
            .map(String::as_str)
            .chain(self.turns.iter().flat_map(|t| {
                std::iter::once(t.text.as_str())
                    .chain(t.tool_results.iter().map(|r| r.text.as_str()))
                    .chain(t.tool_calls.iter().map(|c| c.arguments.as_str()))
            }))
    }

    /// Whether the model is offered tools and has not just been given
    /// their results: the dummy's rule for calling one.
    fn awaits_tool_call(&self) -> bool {
        !self.tools.is_empty()
            && self
                .turns
                .last()
                .is_some_and(|turn| turn.tool_results.is_empty())
    }
}

/// How the model samples its reply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    /// The most tokens the reply may have; at most
    /// [`Responder::max_output_tokens`].
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// Sequences that end the reply where they would begin.
    pub stop: Vec<String>,
}

/// Why a reply ended, in OpenAI's terms (`finish_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The model was done, or wrote a stop sequence.
    Stop,
    /// It reached `max_tokens` (or we stopped it for time).
    Length,
    /// A guardrail or content filter ended it.
    ContentFilter,
    /// The model called tools, and waits for their results.
    ToolCalls,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ContentFilter => "content_filter",
            Finish::ToolCalls => "tool_calls",
        }
    }

    /// The reason [`Finish::as_str`] spells so, as it is stored.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Finish::Stop,
            Finish::Length,
            Finish::ContentFilter,
            Finish::ToolCalls,
        ]
        .into_iter()
        .find(|finish| finish.as_str() == text)
    }
}

/// One piece of a streamed reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// More of the reply's text.
    Text(String),
    /// Output that is not the reply's text (reasoning, a tool's input):
    /// never shown, but written by the model all the same, so its UTF-8
    /// size counts toward what a reply without a usage report is charged.
    Hidden(usize),
    /// The model begins a call of the tool `name`; its arguments follow in
    /// [`Piece::ToolInput`]s.
    ToolCall { id: String, name: String },
    /// More of the arguments of the latest [`Piece::ToolCall`].
    ToolInput(String),
    /// The reply is over: why, and the usage the model reported, if it did
    /// (a stream whose usage never arrives is charged a bound instead).
    Finished {
        finish: Finish,
        usage: Option<Usage>,
    },
}

pub type NextPiece<'a> = Pin<Box<dyn Future<Output = Result<Option<Piece>, ApiError>> + Send + 'a>>;

/// A reply as it is written. `next` yields text pieces, then at most one
/// [`Piece::Finished`], then `None`. An error after some text means the
/// model failed midway: what it wrote until then is still charged.
/// Dropping the stream stops the model.
pub trait ReplyStream: Send {
    fn next(&mut self) -> NextPiece<'_>;
}

/// Why a model call ended before its first piece, and whether the model
/// had read the input by then, which its provider bills.
#[derive(Debug)]
pub struct StartFailure {
    pub error: ApiError,
    /// `false`: the model said it processed nothing (it was throttled, or
    /// refused the request as invalid or forbidden), or never answered at
    /// all; the call is free. `true`: it accepted the request and then
    /// stalled or failed; what it read is charged.
    pub read_input: bool,
}

impl StartFailure {
    /// A refusal: nothing was processed.
    pub fn refused(error: ApiError) -> Self {
        StartFailure {
            error,
            read_input: false,
        }
    }

    /// A failure after the model accepted the request.
    pub fn after_reading(error: ApiError) -> Self {
        StartFailure {
            error,
            read_input: true,
        }
    }
}

pub type StreamFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Box<dyn ReplyStream>, StartFailure>> + Send + 'a>>;

/// Produces replies, streamed, for `/chat/` and `/v1` alike.
///
/// A free responder is called before the session and balance are checked,
/// since the check and the charge are one transaction. A paid one (see
/// [`Responder::is_paid`]) is called only once a hold on the most the chat
/// can cost has been taken, or any well-formed token could run up the bill
/// and concurrent chats could buy more calls than the balance covers (see
/// `billing`).
pub trait Responder: Send + Sync {
    /// Whether a call costs us money. If it does, the chat handler holds
    /// the most it can cost before calling, and settles after.
    fn is_paid(&self) -> bool {
        false
    }

    /// The most tokens a reply may have: what bounds a hold's output part.
    fn max_output_tokens(&self) -> u32 {
        0
    }

    /// Whether the model reads images in user messages.
    fn takes_images(&self) -> bool {
        false
    }

    /// The name clients use for this model (`model` on the OpenAI route).
    fn model_name(&self) -> &str;

    /// Starts a reply to a whole conversation, streamed, and waits for its
    /// first piece. An error here says whether the model read the input
    /// before it failed ([`StartFailure`]).
    fn stream<'a>(
        &'a self,
        conversation: &'a Conversation,
        sampling: &'a Sampling,
    ) -> StreamFuture<'a>;
}

/// The most tokens a dummy reply may be asked for.
pub const DUMMY_MAX_TOKENS: u32 = 8192;

/// The model name of the dummy reply on the OpenAI route.
pub const DUMMY_MODEL: &str = "dummy";

/// The dummy's streamed reply: [`DUMMY_RESPONSE`] a word at a time.
pub const DUMMY_PIECES: [&str; 2] = ["AI", " response"];

/// The arguments of the dummy's tool calls: an empty object, valid for
/// any function without required parameters.
pub const DUMMY_TOOL_ARGUMENTS: &str = "{}";

/// Answers every message with [`DUMMY_RESPONSE`]. Streamed, it reports a
/// usage anyone can work out: one input token per white-space separated
/// word of everything sent and one per image, one output token per piece
/// written; it honours
/// `max_tokens` (in pieces) and stop sequences as a model would.
///
/// Offered tools, it calls one instead, unless the last message holds tool
/// results (then it answers as always): the tool `tool_choice` names, else
/// the first, with the arguments [`DUMMY_TOOL_ARGUMENTS`] and the id
/// `call_dummy_<n>`, `n` the number of tool calls earlier in the
/// conversation; one output token, `finish_reason: "tool_calls"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DummyResponder;

impl DummyResponder {
    pub fn usage(conversation: &Conversation) -> Usage {
        Usage {
            input_tokens: conversation
                .texts()
                .map(|t| t.split_whitespace().count() as u64)
                .sum::<u64>()
                + conversation.images() as u64,
            output_tokens: DUMMY_PIECES.len() as u64,
            ..Default::default()
        }
    }
}

/// The dummy's pieces, in order, then the end with its usage.
struct DummyStream {
    pieces: std::vec::IntoIter<Piece>,
}

impl ReplyStream for DummyStream {
    fn next(&mut self) -> NextPiece<'_> {
        let piece = self.pieces.next();
        Box::pin(async move { Ok(piece) })
    }
}

impl Responder for DummyResponder {
    /// Bedrock's common maximum, so the same requests work against both:
    /// the dummy writes two tokens whatever it is allowed.
    fn max_output_tokens(&self) -> u32 {
        DUMMY_MAX_TOKENS
    }

    fn model_name(&self) -> &str {
        DUMMY_MODEL
    }

    /// It reads nothing, images included: `make run` takes them, so a
    /// client's image path can be tried locally.
    fn takes_images(&self) -> bool {
        true
    }

    fn stream<'a>(
        &'a self,
        conversation: &'a Conversation,
        sampling: &'a Sampling,
    ) -> StreamFuture<'a> {
        let pieces = dummy_pieces(conversation, sampling);
        Box::pin(async move {
            Ok(Box::new(DummyStream {
                pieces: pieces.into_iter(),
            }) as Box<dyn ReplyStream>)
        })
    }
}

/// The dummy's reply as a model would write it under `sampling`: cut at
/// `max_tokens` pieces (`length`) or where a stop sequence would begin.
fn dummy_pieces(conversation: &Conversation, sampling: &Sampling) -> Vec<Piece> {
    if conversation.awaits_tool_call() {
        return dummy_tool_call(conversation);
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut finish = Finish::Stop;
    for (written, piece) in DUMMY_PIECES.iter().enumerate() {
        if written as u32 >= sampling.max_tokens {
            finish = Finish::Length;
            break;
        }
        let before = text.len();
        text.push_str(piece);
        let stop_at = sampling
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min();
        if let Some(at) = stop_at {
            if at > before {
                pieces.push(Piece::Text(text[before..at].to_owned()));
            }
            break;
        }
        pieces.push(Piece::Text((*piece).to_owned()));
    }
    let written = pieces.len() as u64;
    pieces.push(Piece::Finished {
        finish,
        usage: Some(Usage {
            output_tokens: written,
            ..DummyResponder::usage(conversation)
        }),
    });
    pieces
}

/// The dummy's call of a tool: see [`DummyResponder`].
fn dummy_tool_call(conversation: &Conversation) -> Vec<Piece> {
    let name = match &conversation.tool_choice {
        ToolChoice::Named(name) => name.clone(),
        ToolChoice::Auto | ToolChoice::Required => conversation
            .tools
            .first()
            .map(|tool| tool.name.clone())
            .unwrap_or_default(),
    };
    let earlier: usize = conversation.turns.iter().map(|t| t.tool_calls.len()).sum();
    vec![
        Piece::ToolCall {
            id: format!("call_dummy_{earlier}"),
            name,
        },
        Piece::ToolInput(DUMMY_TOOL_ARGUMENTS.to_owned()),
        Piece::Finished {
            finish: Finish::ToolCalls,
            usage: Some(Usage {
                output_tokens: 1,
                ..DummyResponder::usage(conversation)
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_streams_its_reply_in_pieces_with_a_usage_of_words() {
        let conversation = Conversation {
            system: vec!["Be brief.".into()],
            turns: vec![Turn::text(Role::User, "  Hello there,\nfriend ")],
            ..Conversation::default()
        };
        let sampling = Sampling {
            max_tokens: 100,
            ..Sampling::default()
        };
        let mut stream = block_on(DummyResponder.stream(&conversation, &sampling)).unwrap();
        let mut text = String::new();
        let mut end = None;
        while let Some(piece) = block_on(stream.next()).unwrap() {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Hidden(_) | Piece::ToolCall { .. } | Piece::ToolInput(_) => {}
                Piece::Finished { finish, usage } => end = Some((finish, usage)),
            }
        }
        assert_eq!(text, DUMMY_RESPONSE);
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 2,
            ..Default::default()
        };
        assert_eq!(end, Some((Finish::Stop, Some(usage))));
    }

    fn texts(sampling: Sampling) -> (Vec<Piece>, String) {
        let conversation = Conversation::default();
        let pieces = dummy_pieces(&conversation, &sampling);
        let text = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        (pieces, text)
    }

    #[test]
    fn the_dummy_stops_at_max_tokens_and_at_stop_sequences() {
        let (pieces, text) = texts(Sampling {
            max_tokens: 1,
            ..Sampling::default()
        });
        assert_eq!(text, "AI");
        assert!(matches!(
            pieces.last(),
            Some(Piece::Finished { finish: Finish::Length, usage: Some(u) }) if u.output_tokens == 1
        ));
        let (pieces, text) = texts(Sampling {
            max_tokens: 10,
            stop: vec!["pon".into()],
            ..Sampling::default()
        });
        assert_eq!(text, "AI res");
        assert!(matches!(
            pieces.last(),
            Some(Piece::Finished {
                finish: Finish::Stop,
                ..
            })
        ));
    }

    #[test]
    fn offered_tools_the_dummy_calls_the_chosen_one_until_it_has_results() {
        let tool = |name: &str| Tool {
            name: name.into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
        };
        let mut conversation = Conversation {
            turns: vec![Turn::text(Role::User, "weather?")],
            tools: vec![tool("first"), tool("second")],
            ..Conversation::default()
        };
        let call = |c: &Conversation| match &dummy_pieces(c, &Sampling::default())[..] {
            [Piece::ToolCall { id, name }, Piece::ToolInput(args), Piece::Finished {
                finish: Finish::ToolCalls,
                usage: Some(u),
            }] => {
                assert_eq!((args.as_str(), u.output_tokens), (DUMMY_TOOL_ARGUMENTS, 1));
                Some((id.clone(), name.clone()))
            }
            _ => None,
        };
        assert_eq!(
            call(&conversation),
            Some(("call_dummy_0".into(), "first".into()))
        );
        conversation.tool_choice = ToolChoice::Named("second".into());
        assert_eq!(
            call(&conversation),
            Some(("call_dummy_0".into(), "second".into()))
        );
        conversation.turns.push(Turn {
            tool_calls: vec![ToolCall {
                id: "call_dummy_0".into(),
                name: "second".into(),
                arguments: "{}".into(),
            }],
            ..Turn::text(Role::Assistant, "")
        });
        conversation.turns.push(Turn {
            tool_results: vec![ToolResult {
                call_id: "call_dummy_0".into(),
                text: "sunny".into(),
            }],
            ..Turn::text(Role::User, "")
        });
        assert_eq!(call(&conversation), None);
        let sampling = Sampling {
            max_tokens: 10,
            ..Sampling::default()
        };
        let (_, text) = texts_of(dummy_pieces(&conversation, &sampling));
        assert_eq!(text, DUMMY_RESPONSE);
        conversation
            .turns
            .push(Turn::text(Role::User, "and tomorrow?"));
        assert_eq!(
            call(&conversation),
            Some(("call_dummy_1".into(), "second".into()))
        );
    }

    #[test]
    fn each_image_adds_its_token_bound_to_the_input_and_a_word_to_the_dummys_usage() {
        let plain = Conversation::single("Look");
        let mut with_image = plain.clone();
        with_image.turns[0].images.push(Image {
            format: ImageFormat::Png,
            bytes: b"\x89PNG\r\n\x1a\n".to_vec(),
        });
        assert_eq!(
            with_image.input_bound(),
            plain.input_bound() + IMAGE_INPUT_TOKENS
        );
        assert_eq!(
            DummyResponder::usage(&with_image).input_tokens,
            DummyResponder::usage(&plain).input_tokens + 1
        );
        assert!(ImageFormat::Png.matches(&with_image.turns[0].images[0].bytes));
        assert!(!ImageFormat::Gif.matches(&with_image.turns[0].images[0].bytes));
        assert_eq!(
            ImageFormat::of_media_type("image/JPG"),
            Some(ImageFormat::Jpeg)
        );
    }

    #[test]
    fn tools_calls_and_results_count_into_the_input_bound() {
        let plain = Conversation::single("Hi");
        let tool = Tool {
            name: "weather".into(),
            description: Some("Today's".into()),
            parameters: serde_json::json!({"type": "object"}),
        };
        let schema = tool.parameters.to_string().len();
        let offered = Conversation {
            tools: vec![tool],
            ..plain.clone()
        };
        assert_eq!(
            offered.input_bound(),
            plain.input_bound()
                + "weather".len()
                + "Today's".len()
                + schema
                + MESSAGE_OVERHEAD_TOKENS
        );
        let mut answered = offered.clone();
        answered.turns[0].tool_results.push(ToolResult {
            call_id: "c".into(),
            text: "sunny".into(),
        });
        assert_eq!(
            answered.input_bound(),
            offered.input_bound() + "c".len() + "sunny".len() + MESSAGE_OVERHEAD_TOKENS
        );
    }

    fn texts_of(pieces: Vec<Piece>) -> (Vec<Piece>, String) {
        let text = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        (pieces, text)
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
