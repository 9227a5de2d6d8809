//! The production Bedrock responder's streamed replies, through the real
//! SDK, against a local stand-in that answers ConverseStream in AWS
//! event-stream framing. No DynamoDB: these hold the responder alone to
//! the `ReplyStream` contract (pieces in order, at most one end, failures
//! split into "busy" and "failed", a dropped stream stops the model).

use std::time::{Duration, Instant};

use api_tests::converse_stub::{Answer, ConverseStub, Streamed};
use chat_core::pricing::Usage;
use chat_core::responder::{
    Conversation, Finish, Piece, ReplyStream, Responder, Role, Sampling, StartFailure, Turn,
};
use chat_core::ApiError;
use chat_model::{BedrockResponder, ModelConfig};
use serde_json::json;

const MODEL_ID: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// Far longer than anything here takes on a slow machine, far shorter than
/// a stand-in that was never stopped would go on writing.
const PATIENCE: Duration = Duration::from_secs(30);

/// The production settings, but one attempt, so call counts are exact.
fn one_attempt() -> ModelConfig {
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    model
}

fn hello() -> Conversation {
    Conversation {
        system: vec![],
        turns: vec![turn(Role::User, "Hello")],
        ..Conversation::default()
    }
}

fn turn(role: Role, text: &str) -> Turn {
    Turn::text(role, text)
}

fn sampling() -> Sampling {
    Sampling {
        max_tokens: 256,
        ..Sampling::default()
    }
}

fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
    Usage {
        input_tokens,
        output_tokens,
        ..Default::default()
    }
}

/// Every piece until the stream ends or fails, and the failure if it did.
async fn read_all(stream: &mut Box<dyn ReplyStream>) -> (Vec<Piece>, Option<ApiError>) {
    let mut pieces = Vec::new();
    loop {
        match stream.next().await {
            Ok(Some(piece)) => pieces.push(piece),
            Ok(None) => return (pieces, None),
            Err(err) => return (pieces, Some(err)),
        }
    }
}

/// The whole reply `responder` streams to `hello()` at the default
/// sampling, and how it failed if it did.
async fn reply_to_hello(responder: &BedrockResponder) -> (Vec<Piece>, Option<ApiError>) {
    let mut stream = responder.stream(&hello(), &sampling()).await.unwrap();
    read_all(&mut stream).await
}

fn text(pieces: &str) -> Piece {
    Piece::Text(pieces.to_owned())
}

fn finished(finish: Finish, usage: Option<Usage>) -> Piece {
    Piece::Finished { finish, usage }
}

#[tokio::test]
async fn a_stream_yields_its_pieces_in_order_then_its_end_and_usage() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["Bon", "jour", " !"]).usage(31, 3),
    ));
    let responder = stub.responder(one_attempt());
    let conversation = Conversation {
        system: vec!["Be brief.".into(), "Answer in French.".into()],
        turns: vec![
            turn(Role::User, "Hi"),
            turn(Role::Assistant, "Salut"),
            turn(Role::User, "How are you?"),
        ],
        ..Conversation::default()
    };
    let sampling = Sampling {
        max_tokens: 200,
        temperature: Some(0.5),
        top_p: Some(0.25),
        stop: vec!["END".into(), "\n\n".into()],
    };

    let mut stream = responder.stream(&conversation, &sampling).await.unwrap();
    let (pieces, failure) = read_all(&mut stream).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(
        pieces,
        [
            text("Bon"),
            text("jour"),
            text(" !"),
            finished(Finish::Stop, Some(usage(31, 3)))
        ]
    );
    assert!(matches!(stream.next().await, Ok(None)), "None stays None");

    let calls = stub.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].model_id, MODEL_ID);
    assert!(calls[0].streamed, "ConverseStream, not Converse");
    assert_eq!(
        calls[0].body["system"],
        json!([{ "text": "Be brief." }, { "text": "Answer in French." }])
    );
    assert_eq!(
        calls[0].body["messages"],
        json!([
            { "role": "user", "content": [{ "text": "Hi" }] },
            { "role": "assistant", "content": [{ "text": "Salut" }] },
            { "role": "user", "content": [{ "text": "How are you?" }] },
        ])
    );
    assert_eq!(
        calls[0].body["inferenceConfig"],
        json!({ "maxTokens": 200, "temperature": 0.5, "topP": 0.25, "stopSequences": ["END", "\n\n"] })
    );
    assert_eq!(stub.hang_ups(), 0, "a stream read to its end");
}

#[tokio::test]
async fn only_the_sampling_asked_for_is_sent_and_never_more_tokens_than_the_cap() {
    let stub = ConverseStub::start(Answer::text("ok"));
    let mut model = one_attempt();
    model.max_tokens = 300;
    let responder = stub.responder(model);
    let greedy = Sampling {
        max_tokens: 5000,
        ..Sampling::default()
    };
    let mut stream = responder.stream(&hello(), &greedy).await.unwrap();
    read_all(&mut stream).await;
    let body = &stub.calls()[0].body;
    assert_eq!(body["inferenceConfig"], json!({ "maxTokens": 300 }));
    assert!(body.get("system").is_none(), "no system prompt: {body}");
}

#[tokio::test]
async fn a_reply_answer_streams_as_one_piece() {
    let stub = ConverseStub::start(Answer::used("All of it.", 20, 4));
    let (pieces, failure) = reply_to_hello(&stub.responder(one_attempt())).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(
        pieces,
        [
            text("All of it."),
            finished(Finish::Stop, Some(usage(20, 4)))
        ]
    );
}

#[tokio::test]
async fn each_stop_reason_ends_the_stream_with_its_finish_reason() {
    for (reason, finish) in [
        ("end_turn", Finish::Stop),
        ("stop_sequence", Finish::Stop),
        ("max_tokens", Finish::Length),
        ("guardrail_intervened", Finish::ContentFilter),
        ("content_filtered", Finish::ContentFilter),
    ] {
        let stub = ConverseStub::start(Answer::Stream(
            Streamed::pieces(&["cut", " short"])
                .usage(10, 256)
                .stop_reason(reason),
        ));
        let (pieces, failure) = reply_to_hello(&stub.responder(one_attempt())).await;
        assert!(failure.is_none(), "{reason}: {failure:?}");
        assert_eq!(
            pieces.last(),
            Some(&finished(finish, Some(usage(10, 256)))),
            "{reason}"
        );
        assert_eq!(pieces.len(), 3, "{reason}");
    }
}

#[tokio::test]
async fn a_stream_without_its_metadata_ends_without_usage() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["no", " usage"]).without_metadata(),
    ));
    let (pieces, failure) = reply_to_hello(&stub.responder(one_attempt())).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(
        pieces,
        [text("no"), text(" usage"), finished(Finish::Stop, None)]
    );
}

#[tokio::test]
async fn a_stream_failing_midway_gives_its_pieces_then_the_error_and_is_not_retried() {
    for (exception, busy) in [
        ("modelStreamErrorException", false),
        ("internalServerException", false),
        ("validationException", false),
        ("throttlingException", true),
        ("serviceUnavailableException", true),
    ] {
        let stub = ConverseStub::start(Answer::Stream(
            Streamed::pieces(&["one", " two", " three", " four"]).failing_after(2, exception),
        ));
        // The production retries: a stream that has begun is never sent
        // again, whatever its failure.
        let responder = stub.responder(ModelConfig::new(MODEL_ID));
        let mut stream = responder.stream(&hello(), &sampling()).await.unwrap();
        let (pieces, failure) = read_all(&mut stream).await;
        assert_eq!(pieces, [text("one"), text(" two")], "{exception}");
        match failure {
            Some(ApiError::ModelUnavailable(_)) if busy => {}
            Some(ApiError::ModelError(_)) if !busy => {}
            other => panic!("{exception}: {other:?}"),
        }
        assert!(
            matches!(stream.next().await, Ok(None)),
            "{exception}: a failed stream stays over"
        );
        assert_eq!(stub.call_count(), 1, "{exception}");
    }
}

#[tokio::test]
async fn a_model_failing_before_any_text_fails_the_start() {
    for (exception, busy) in [
        ("modelStreamErrorException", false),
        ("throttlingException", true),
    ] {
        let stub = ConverseStub::start(Answer::Stream(
            Streamed::pieces(&["never"]).failing_after(0, exception),
        ));
        let responder = stub.responder(ModelConfig::new(MODEL_ID));
        let result = responder.stream(&hello(), &sampling()).await;
        // A throttled model processed nothing; one that failed after it
        // accepted the request had read it, which its provider bills.
        match result {
            Err(StartFailure {
                error: ApiError::ModelUnavailable(_),
                read_input: false,
            }) if busy => {}
            Err(StartFailure {
                error: ApiError::ModelError(_),
                read_input: true,
            }) if !busy => {}
            other => panic!("{exception}: {:?}", other.map(|_| "a stream")),
        }
        assert_eq!(stub.call_count(), 1, "{exception}");
    }
}

#[tokio::test]
async fn a_reply_without_text_is_only_its_end() {
    let stub = ConverseStub::start(Answer::Empty);
    let (pieces, failure) = reply_to_hello(&stub.responder(one_attempt())).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(pieces, [finished(Finish::Stop, Some(usage(12, 5)))]);
}

#[tokio::test]
async fn a_slow_model_within_the_timeout_still_answers() {
    // Each wait is bounded, not the whole reply: 2 s to start and 1.5 s
    // between pieces, against 5 s, take longer than 5 s in all.
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["s", "l", "o", "w"])
            .first_event_after(Duration::from_secs(2))
            .between_pieces(Duration::from_millis(1500)),
    ));
    let mut model = one_attempt();
    model.timeout = Duration::from_secs(5);
    let (pieces, failure) = reply_to_hello(&stub.responder(model)).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(pieces.len(), 5);
    assert_eq!(pieces[4], finished(Finish::Stop, Some(usage(12, 4))));
}

#[tokio::test]
async fn a_model_slower_than_the_timeout_to_start_is_unavailable_before_any_piece() {
    // Slow to send its head (the SDK's operation timeout), and slow to send
    // its first event after a prompt head (the stream's own bound).
    let cases = [
        (
            "head",
            Answer::after(Duration::from_secs(60), Answer::text("too late")),
        ),
        (
            "first event",
            Answer::Stream(
                Streamed::pieces(&["too late"]).first_event_after(Duration::from_secs(60)),
            ),
        ),
    ];
    for ((slow, answer), read_input) in cases.into_iter().zip([false, true]) {
        let stub = ConverseStub::start(answer);
        let mut model = ModelConfig::new(MODEL_ID);
        model.timeout = Duration::from_secs(1);
        let responder = stub.responder(model);
        let started = Instant::now();
        let result = responder.stream(&hello(), &sampling()).await;
        let took = started.elapsed();
        // No head: nothing says the model began. A head and then silence:
        // it accepted the request, and read it.
        assert!(
            matches!(result, Err(StartFailure { error: ApiError::ModelUnavailable(_), read_input: r }) if r == read_input),
            "{slow}: {:?}",
            result.err()
        );
        assert!(took < PATIENCE, "{slow}: gave up after {took:?}, not 60 s");
        assert_eq!(
            stub.call_count(),
            1,
            "{slow}: a timed-out call is not sent again"
        );
    }
}

#[tokio::test]
async fn a_model_that_stalls_midway_is_unavailable_after_the_pieces_it_wrote() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["before", " after"]).between_pieces(Duration::from_secs(60)),
    ));
    let mut model = one_attempt();
    model.timeout = Duration::from_secs(1);
    let (pieces, failure) = reply_to_hello(&stub.responder(model)).await;
    assert_eq!(pieces, [text("before")]);
    assert!(
        matches!(failure, Some(ApiError::ModelUnavailable(_))),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_throttled_model_fails_the_start_after_the_configured_attempts() {
    for (attempts, model) in [(2, ModelConfig::new(MODEL_ID)), (1, one_attempt())] {
        let stub = ConverseStub::start(Answer::error(429, "ThrottlingException"));
        let responder = stub.responder(model);
        let result = responder.stream(&hello(), &sampling()).await;
        assert!(
            matches!(
                result,
                Err(StartFailure {
                    error: ApiError::ModelUnavailable(_),
                    read_input: false
                })
            ),
            "{:?}",
            result.err()
        );
        assert_eq!(stub.call_count(), attempts);
        assert!(stub.calls().iter().all(|call| call.streamed));
    }
}

#[tokio::test]
async fn a_refused_request_fails_the_start_once_as_a_model_error() {
    for error_type in ["ValidationException", "AccessDeniedException"] {
        let status = if error_type == "ValidationException" {
            400
        } else {
            403
        };
        let stub = ConverseStub::start(Answer::error(status, error_type));
        let responder = stub.responder(ModelConfig::new(MODEL_ID));
        let result = responder.stream(&hello(), &sampling()).await;
        assert!(
            matches!(
                result,
                Err(StartFailure {
                    error: ApiError::ModelError(_),
                    read_input: false
                })
            ),
            "{error_type}: {:?}",
            result.err()
        );
        assert_eq!(stub.call_count(), 1, "{error_type}: a 4xx is not retried");
    }
}

#[tokio::test]
async fn a_recovered_model_streams_on_the_second_attempt() {
    let stub = ConverseStub::scripted(|n| match n {
        0 => Answer::error(503, "ServiceUnavailableException"),
        _ => Answer::Stream(Streamed::pieces(&["second", " time"])),
    });
    let (pieces, failure) = reply_to_hello(&stub.responder(ModelConfig::new(MODEL_ID))).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(pieces[..2], [text("second"), text(" time")]);
    assert_eq!(stub.call_count(), 2);
}

#[tokio::test]
async fn dropping_the_stream_after_its_first_piece_stops_the_model() {
    // A minute of writing if nobody stopped it.
    let pieces = vec!["word "; 1200];
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&pieces).between_pieces(Duration::from_millis(50)),
    ));
    let responder = stub.responder(one_attempt());
    let mut stream = responder.stream(&hello(), &sampling()).await.unwrap();
    assert_eq!(stream.next().await.unwrap(), Some(text("word ")));
    assert_eq!(stub.hang_ups(), 0, "nobody has left yet");

    drop(stream);
    assert_eq!(
        stub.wait_for_hang_ups(1, PATIENCE).await,
        1,
        "the stand-in was still writing {PATIENCE:?} after the stream was dropped"
    );
    assert_eq!(stub.call_count(), 1);
}
