//! Every model call is paid for: what happens to the money when something
//! fails after the model started (docs/billing.md has the policy). The
//! production Bedrock responder talks to the local Converse stand-in; the
//! books are DynamoDB Local's, and every test ends on the ledger.

use chat_core::credits::Credits;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tests::completion::*;
use api_tests::conflicts::{with_conflicts, with_patient_faults};
use api_tests::converse_stub::{Answer, ConverseStub, Gate, Streamed};
use api_tests::runtime_api::{debug_binary, start};
use api_tests::*;
use chat_core::clock::Timestamp;
use chat_core::config::Config;
use chat_core::deadline::Deadline;
use chat_core::pricing::{Pricing, Usage, UsagePrices};
use chat_core::App;
use chat_model::ModelConfig;
use devtools::dynamodb_local::{client, fresh_app, fresh_tables, quiet_app};
use lambda_http::RequestExt;
use serde_json::{json, Value};

const MODEL_ID: &str = "test-model";

/// Dear enough that a few tokens of a bound show in the balance.
const PRICES: UsagePrices = UsagePrices::plain(1000, 2000);

/// One attempt (exact call counts) and a model that may stall for 1 s.
fn impatient() -> ModelConfig {
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    model.timeout = Duration::from_secs(1);
    model
}

/// An app on fresh tables with the stand-in behind it, usage pricing, and
/// `client` as its DynamoDB client (one with conflicts injected, say).
fn app_on(stub: &ConverseStub, config: Config, client: aws_sdk_dynamodb::Client) -> App {
    let mut app = quiet_app(config, client);
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(impatient())), app.config.pricing);
    app
}

async fn usage_config(open_calls: u32) -> (Config, aws_sdk_dynamodb::Client) {
    let client = client();
    let mut config = Config::with_tables(fresh_tables(&client).await);
    config.pricing = Pricing::Usage(PRICES);
    config.open_calls_per_user = open_calls;
    (config, client)
}

fn v1(stream: bool, message: &str) -> Value {
    json!({
        "model": MODEL_ID,
        "stream": stream,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": message}],
    })
}

/// What a reply without a usage report costs: the input's bound for one
/// user turn of `message` and `written` bytes of output.
fn bound_cost(message: &str, written: u64) -> i64 {
    // One turn: its bytes plus 16 per message, plus 64 in all.
    let input = message.len() as u64 + 16 + 64;
    PRICES
        .cost(Usage {
            input_tokens: input,
            output_tokens: written,
            ..Default::default()
        })
        .get() as i64
}

fn chunks_and_end(answer: &Completed) -> (String, String) {
    let events = answer.events();
    let (last, rest) = events.split_last().unwrap();
    let chunks: Vec<Value> = rest
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    (streamed_text(&chunks), last.clone())
}

#[tokio::test]
async fn a_model_that_stalls_after_a_piece_is_charged_what_it_read_and_wrote_on_every_route() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["one ", "two"]).between_pieces(Duration::from_secs(120)),
    ));
    let (config, client) = usage_config(4).await;
    let app = Arc::new(app_on(&stub, config, client));
    let token = signed_up(&app, "alice").await;
    // The bound: "stall" read, "one " (4 bytes) written.
    let cost = bound_cost("stall", 4);

    let response = chat_as(&app, &token, "stall").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(&response)["response"], "one ");
    assert_eq!(response.headers()["finish-reason"], "length");
    assert_eq!(
        response.headers()["tokens-charged"],
        cost.to_string().as_str()
    );
    let mut spent = cost;
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - spent));

    let whole = complete(&app, &token, v1(false, "stall")).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.json()["choices"][0]["message"]["content"], "one ");
    assert_eq!(whole.json()["choices"][0]["finish_reason"], "length");
    assert_eq!(
        whole.header("tokens-charged"),
        Some(cost.to_string().as_str())
    );
    spent += cost;

    let streamed = complete(&app, &token, v1(true, "stall")).await;
    assert_eq!(streamed.status, 200);
    let (text, last) = chunks_and_end(&streamed);
    assert_eq!(text, "one ");
    let error: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(error["error"]["code"], "model_unavailable");
    spent += cost;

    // The Responses API: the text so far as an incomplete response, or
    // its deltas and then an error event.
    let asked = json!({"model": MODEL_ID, "max_output_tokens": 100, "input": "stall"});
    let whole = respond(&app, &token, None, &asked).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.json()["status"], "incomplete");
    assert_eq!(whole.json()["output"][0]["content"][0]["text"], "one ");
    assert_eq!(
        whole.header("tokens-charged"),
        Some(cost.to_string().as_str())
    );
    spent += cost;
    let mut streamed = asked.clone();
    streamed["stream"] = json!(true);
    let streamed = respond(&app, &token, None, &streamed).await;
    let events = named_events(std::str::from_utf8(&streamed.body).unwrap());
    let deltas: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, "one ");
    let (kind, error) = events.last().unwrap();
    assert_eq!(
        (kind.as_str(), &error["code"]),
        ("error", &json!("model_unavailable"))
    );
    spent += cost;

    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - spent));
    assert_eq!(stored_chats(&app, "alice").await, 5);
    assert!(ledger_entries(&app, "alice", "ledger#release#")
        .await
        .is_empty());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_model_that_stalls_after_accepting_the_request_is_charged_what_it_read() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["late"]).first_event_after(Duration::from_secs(120)),
    ));
    let (config, client) = usage_config(4).await;
    let app = Arc::new(app_on(&stub, config, client));
    let token = signed_up(&app, "alice").await;
    let cost = bound_cost("read me", 0);

    let response = chat_as(&app, &token, "read me").await;
    assert_eq!(response.status(), 503);
    let body = json_of(&response);
    assert_eq!(body["error"], "model_unavailable");
    assert_eq!(body["charged"], cost);
    assert_eq!(
        response.headers()["tokens-charged"],
        cost.to_string().as_str()
    );
    assert!(response.headers().contains_key("retry-after"));

    let answer = complete(&app, &token, v1(false, "read me")).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json()["error"]["code"], "model_unavailable");
    assert_eq!(
        answer.header("tokens-charged"),
        Some(cost.to_string().as_str())
    );
    // Charged, so a retry would be a second call: the client decides.
    assert_eq!(answer.header("x-should-retry"), Some("false"));

    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 2 * cost));
    // Each charge has its chat, with no reply.
    assert_eq!(stored_chats(&app, "alice").await, 2);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_reply_with_usage_and_no_text_is_charged_its_usage_on_v1() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&[])
            .usage(30, 7)
            .stop_reason("guardrail_intervened"),
    ));
    let (config, client) = usage_config(4).await;
    let app = Arc::new(app_on(&stub, config, client));
    let token = signed_up(&app, "alice").await;
    // 30 x 1000 + 7 x 2000 thousandths.
    let cost = 44;
    let whole = complete(&app, &token, v1(false, "filtered")).await;
    assert_eq!(whole.status, 200);
    let body = whole.json();
    assert_eq!(body["choices"][0]["message"]["content"], "");
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(body["usage"]["completion_tokens"], 7);
    assert_eq!(whole.header("tokens-charged"), Some("44"));
    let streamed = complete(&app, &token, v1(true, "filtered")).await;
    let (text, last) = chunks_and_end(&streamed);
    assert_eq!((text.as_str(), last.as_str()), ("", "[DONE]"));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 2 * cost));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn twenty_five_conflicts_on_a_streamed_settle_end_in_a_charge_not_a_release() {
    let stub = ConverseStub::start(Answer::used("paid for", 100, 20));
    let (config, client) = usage_config(4).await;
    let (conflicted, conflicts) = with_conflicts(&client, "TransactWriteItems");
    let app = Arc::new(app_on(&stub, config, conflicted));
    let token = signed_up(&app, "alice").await;
    // The hold commits; its settle meets 25 conflicts, more than one round
    // of the store's retries, and still commits within the invocation.
    conflicts.arm_after(1, 25);
    let answer = complete(&app, &token, v1(true, "settle me")).await;
    let (text, last) = chunks_and_end(&answer);
    assert_eq!((text.as_str(), last.as_str()), ("paid for", "[DONE]"));
    assert_eq!(conflicts.sent(), 25);
    // 100 x 1000 + 20 x 2000 thousandths.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 140));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds[0]["state"].as_s().unwrap(), "settled");
    assert!(ledger_entries(&app, "alice", "ledger#release#")
        .await
        .is_empty());
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_settle_under_a_lambda_deadline_that_meets_conflicts_tries_again_while_time_is_left() {
    let stub = ConverseStub::start(Answer::used("paid for", 100, 20));
    let (config, client) = usage_config(4).await;
    let (conflicted, conflicts) = with_conflicts(&client, "TransactWriteItems");
    let app = Arc::new(app_on(&stub, config, conflicted));
    let token = signed_up(&app, "alice").await;
    // As above, but inside an invocation with a minute left: the rounds
    // are bounded by the deadline now, not counted, and a round that did
    // not commit is followed by another while time is left.
    conflicts.arm_after(1, 25);
    let context = lambda_context_ending_in(Duration::from_secs(60));
    let request = completion_request(
        Some(&format!("Bearer {token}")),
        &v1(false, "settle me").to_string(),
    )
    .with_lambda_context(context);
    let answer = Completed::of(completions::handle(app.clone(), request).await.unwrap()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "paid for"
    );
    assert_eq!(conflicts.sent(), 25);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 140));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds[0]["state"].as_s().unwrap(), "settled");
    assert!(!holds[0].contains_key("owed_cost"));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_settle_that_never_commits_leaves_what_is_owed_and_the_sweeper_charges_it() {
    let stub = ConverseStub::start(Answer::used("owed for", 100, 20));
    let (config, client) = usage_config(4).await;
    let (conflicted, conflicts) = with_conflicts(&client, "TransactWriteItems");
    let app = Arc::new(app_on(&stub, config, conflicted));
    let token = signed_up(&app, "alice").await;
    let hold_amount = PRICES.cost(Usage::bound("owe".len() + 16, 100)).get() as i64;
    conflicts.arm_after(1, usize::MAX);
    // Bounded: rounds that never end would hang here, not fail.
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        complete_keyed(&app, &token, "owed", &v1(true, "owe")),
    )
    .await
    .expect("the settle's rounds come to an end");
    // Without a deadline, three rounds of the store's attempts.
    let attempts = chat_core::store::retry::MAX_ATTEMPTS as usize;
    assert_eq!(conflicts.sent(), 3 * attempts);
    // The text reached the client, and it ends as any other: the charge is
    // certain, only late.
    let (text, last) = chunks_and_end(&answer);
    assert_eq!((text.as_str(), last.as_str()), ("owed for", "[DONE]"));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - hold_amount));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds[0]["state"].as_s().unwrap(), "open");
    assert_eq!(holds[0]["owed_cost"].as_n().unwrap(), "140");
    assert_ledger_balances_mid_flight(&app).await;

    // DynamoDB is itself again; the sweeper settles at what is owed.
    conflicts.arm(0);
    let later = Timestamp::now().plus(app.config.hold_ttl + Duration::from_secs(1));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!((swept.settled_owed, swept.charged_at_bound), (1, 0));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 140));
    assert_eq!(stored_chats(&app, "alice").await, 1);
    assert_eq!(saved_messages(&app, "alice").await, ["owe"]);
    // The key's marker was answered with the chat: a retry replays it.
    let replay = complete_keyed(&app, &token, "owed", &v1(false, "owe")).await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        replay.json()["choices"][0]["message"]["content"],
        "owed for"
    );
    assert_eq!(stub.call_count(), 1);
    assert!(ledger_entries(&app, "alice", "ledger#release#")
        .await
        .is_empty());
    assert_ledger_balances(&app, "alice").await;

    async fn assert_ledger_balances_mid_flight(app: &App) {
        let audit = audit_of(app, "alice").await;
        assert!(audit.balances());
        assert_eq!(audit.open_holds, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_streams_from_one_user_run_no_more_than_the_cap() {
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::gated(&gate, Answer::text("in turn")));
    let (mut config, client) = usage_config(4).await;
    config.pricing = Pricing::Flat(100);
    let app = Arc::new(app_on(&stub, config, client));
    let token = signed_up(&app, "alice").await;
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (app, token) = (app.clone(), token.clone());
        running.spawn(async move { complete(&app, &token, v1(true, "hi")).await });
    }
    // Four hold their calls open at the gate; the others are refused while
    // they do. Should more get through, they wait at the gate too, and the
    // count below says so once the time is up.
    let mut answers = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        while answers.len() < 16 {
            answers.push(running.join_next().await.unwrap().unwrap());
        }
    })
    .await;
    gate.open();
    while let Some(answer) = running.join_next().await {
        answers.push(answer.unwrap());
    }
    assert!(waited.is_ok(), "16 refusals did not come");
    let refused: Vec<&Completed> = answers.iter().filter(|a| a.status == 429).collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!((ok, refused.len()), (4, 16));
    for answer in &refused {
        assert_eq!(answer.json()["error"]["code"], "rate_limit_exceeded");
        assert_eq!(answer.header("x-should-retry"), Some("true"));
        assert!(answer.header("retry-after").is_some());
    }
    assert_eq!(stub.call_count(), 4);
    assert_eq!(stored_tokens(&app, "alice").await, Some(3600));
    // Every call counted out again as it settled.
    let account = stored_account(&app, "alice").await;
    assert_eq!(account["open_calls"].as_n().unwrap(), "0");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_function_killed_after_its_model_wrote_is_charged_its_hold_by_the_sweeper() {
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["written ", "never sent"]).between_pieces(Duration::from_secs(120)),
    ));
    let app = fresh_app().await;
    assert_eq!(register(&app, "alice").await.status(), 201);
    start_events_session(&app).await.unwrap();
    let event = std::fs::read_to_string(events_dir().join("chat.json")).unwrap();
    let function = start(
        &debug_binary("chat"),
        &event,
        app.store.tables(),
        &[
            ("MODEL_ID", MODEL_ID),
            ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url()),
            ("MODEL_TIMEOUT_SECONDS", "15"),
            // Priced by use, so the whole hold is told apart from a charge
            // for what was written.
            ("PRICING", "usage"),
            ("MODEL_INPUT_PRICE", "1000"),
            ("MODEL_OUTPUT_PRICE", "2000"),
        ],
    );
    let began = std::time::Instant::now();
    while stub.call_count() == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the function never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    function.kill();
    // The hold: the event's message read, the default reply cap written.
    let message = "Hello, how are you?";
    let hold = PRICES.cost(Usage::bound(message.len() + 16, 1024)).get() as i64;
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - hold),
        "held"
    );
    let late = Timestamp::now().plus(app.config.hold_ttl + Duration::from_secs(1));
    let swept = sweeper::sweep(&app, late, Deadline::none()).await.unwrap();
    // Nothing recorded what the model did: its hold, the bound, is charged,
    // and the chat saved with its message and no reply.
    assert_eq!((swept.charged_at_bound, swept.settled_owed), (1, 0));
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - hold));
    assert_eq!(saved_messages(&app, "alice").await, [message]);
    assert!(ledger_entries(&app, "alice", "ledger#release#")
        .await
        .is_empty());
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_refused_calls_release_that_never_commits_is_given_back_by_the_sweeper() {
    let stub = ConverseStub::start(Answer::error(400, "ValidationException"));
    let (config, client) = usage_config(4).await;
    let (conflicted, conflicts) = with_conflicts(&client, "TransactWriteItems");
    let app = Arc::new(app_on(&stub, config, conflicted));
    let token = signed_up(&app, "alice").await;
    // The hold commits; the model refuses; the release meets conflicts
    // until it gives up, and marks the hold for the sweeper instead.
    conflicts.arm_after(1, usize::MAX);
    // Bounded: rounds that never end would hang here, not fail.
    let response = tokio::time::timeout(Duration::from_secs(60), chat_as(&app, &token, "refused"))
        .await
        .expect("the release's rounds come to an end");
    assert_eq!(response.status(), 502);
    // Without a deadline, three rounds of the store's attempts.
    let attempts = chat_core::store::retry::MAX_ATTEMPTS as usize;
    assert_eq!(conflicts.sent(), 3 * attempts);
    let hold = PRICES.cost(Usage::bound("refused".len() + 16, 1024)).get() as i64;
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - hold));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds[0]["refused"].as_bool(), Ok(&true));

    conflicts.arm(0);
    let later = Timestamp::now().plus(app.config.hold_ttl + Duration::from_secs(1));
    let swept = sweeper::sweep(&app, later, Deadline::none()).await.unwrap();
    assert_eq!((swept.released, swept.charged_at_bound), (1, 0));
    // The model did nothing: nothing is charged, and no chat saved.
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000));
    assert_eq!(stored_chats(&app, "alice").await, 0);
    assert_ledger_balances(&app, "alice").await;
}

/// One attempt, and a timeout longer than any test here waits: the model
/// answers when the test opens its gate, never before.
fn patient() -> ModelConfig {
    let mut model = ModelConfig::new(MODEL_ID);
    model.max_attempts = 1;
    model.timeout = Duration::from_secs(120);
    model
}

fn patient_app(stub: &ConverseStub, config: Config, client: aws_sdk_dynamodb::Client) -> App {
    let mut app = quiet_app(config, client);
    app.models =
        chat_core::served::Models::only(Arc::new(stub.responder(patient())), app.config.pricing);
    app
}

/// Waits, boundedly, until the stand-in has been called `count` times.
async fn wait_for_calls(stub: &ConverseStub, count: usize) {
    let began = Instant::now();
    while stub.call_count() < count {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the model was called {} times, not {count}",
            stub.call_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_v1_reply_still_writing_at_the_cutoff_is_cut_there_and_charged_what_was_written() {
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::Stream(
        Streamed::pieces(&["one ", "two"]).gated_after_first(&gate),
    ));
    let (config, client) = usage_config(4).await;
    let app = Arc::new(patient_app(&stub, config, client));
    let token = signed_up(&app, "alice").await;
    // A Lambda deadline 8 s away: the model is cut off at its margin, 3 s
    // from now, still waiting to write its second piece.
    let deadline_in = Duration::from_secs(8);
    let context = lambda_context_ending_in(deadline_in);
    let started = Instant::now();
    let request = completion_request(
        Some(&format!("Bearer {token}")),
        &v1(false, "cut me").to_string(),
    )
    .with_lambda_context(context);
    let answer = Completed::of(completions::handle(app.clone(), request).await.unwrap()).await;
    let answered = started.elapsed();
    gate.open();
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["choices"][0]["message"]["content"], "one ");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let cost = bound_cost("cut me", 4);
    assert_eq!(
        answer.header("tokens-charged"),
        Some(cost.to_string().as_str())
    );
    // Cut at the margin (less the deadline's rounding to milliseconds),
    // and answered before the deadline.
    let cutoff = deadline_in - chat_core::billing::SETTLE_MARGIN;
    assert!(
        answered + Duration::from_millis(5) >= cutoff,
        "answered at {answered:?}"
    );
    assert!(answered < deadline_in, "answered at {answered:?}");
    // The model was stopped there: the stand-in could not write the rest.
    assert_eq!(stub.wait_for_hang_ups(1, Duration::from_secs(30)).await, 1);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - cost));
    assert_eq!(saved_messages(&app, "alice").await, ["cut me"]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweep_that_read_a_hold_open_just_before_its_settle_closes_nothing() {
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::gated(&gate, Answer::used("late", 100, 20)));
    let (config, client) = usage_config(4).await;
    let hold_ttl = config.hold_ttl;
    let app = Arc::new(patient_app(&stub, config.clone(), client.clone()));
    // The sweeper's reads reach DynamoDB Local, and their answers wait.
    let (slow_reads, reads) = with_patient_faults(&client, "GetItem");
    let sweeping = quiet_app(config, slow_reads);
    let token = signed_up(&app, "alice").await;
    let chat = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move { chat_as(&app, &token, "race me").await })
    };
    wait_for_calls(&stub, 1).await;
    reads.arm_held(0, 1);
    let later = Timestamp::now().plus(hold_ttl + Duration::from_secs(1));
    let sweep =
        tokio::spawn(async move { sweeper::sweep(&sweeping, later, Deadline::none()).await });
    assert!(
        reads.wait_for(1, Duration::from_secs(60)).await,
        "the sweeper never read the hold"
    );
    // The sweeper has read the hold open; now the chat settles it.
    gate.open();
    let response = chat.await.unwrap();
    assert_eq!(response.status(), 200);
    // 100 x 1000 + 20 x 2000 thousandths.
    assert_eq!(response.headers()["tokens-charged"], "140");
    reads.let_go();
    let swept = sweep.await.unwrap().unwrap();
    assert_eq!(
        swept,
        sweeper::Swept {
            closed_meanwhile: 1,
            ..sweeper::Swept::default()
        }
    );
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 140));
    let holds = ledger_entries(&app, "alice", "ledger#hold#").await;
    assert_eq!(holds[0]["state"].as_s().unwrap(), "settled");
    assert!(ledger_entries(&app, "alice", "ledger#settle#")
        .await
        .is_empty());
    assert_eq!(saved_messages(&app, "alice").await, ["race me"]);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweepers_at_once_close_each_abandoned_hold_once() {
    const HOLDS: usize = 10;
    let (config, client) = usage_config(0).await;
    let app = quiet_app(config.clone(), client.clone());
    let token = signed_up(&app, "alice").await;
    let verified = app
        .auth
        .verify(chat_core::domain::AuthToken::parse(&token).unwrap())
        .await
        .unwrap();
    let now = Timestamp::now();
    let message = chat_core::domain::ChatMessage::parse("abandoned".into()).unwrap();
    let request = chat_core::store::HoldRequest {
        amount: Credits::new(30),
        message: &message,
        model: "dummy",
        pricing: Pricing::Flat(30),
        key: None,
        taken: now,
        expires: now,
    };
    for _ in 0..HOLDS {
        let taken = app
            .store
            .take_hold(&verified, &request, Deadline::none())
            .await;
        assert!(matches!(taken, Ok(chat_core::store::HoldOutcome::Held(_))));
    }
    // Both sweepers read every hold open before either closes one.
    let later = now.plus(Duration::from_secs(2));
    let mut sweeps = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (slow_reads, reads) = with_patient_faults(&client, "GetItem");
        reads.arm_held(0, HOLDS);
        let sweeping = quiet_app(config.clone(), slow_reads);
        sweeps.push(tokio::spawn(async move {
            sweeper::sweep(&sweeping, later, Deadline::none()).await
        }));
        readers.push(reads);
    }
    for reads in &readers {
        assert!(reads.wait_for(HOLDS, Duration::from_secs(60)).await);
    }
    readers.iter().for_each(|reads| reads.let_go());
    let mut total = sweeper::Swept::default();
    for sweep in sweeps {
        let swept = sweep.await.unwrap().unwrap();
        total.charged_at_bound += swept.charged_at_bound;
        total.closed_meanwhile += swept.closed_meanwhile;
        total.settled_owed += swept.settled_owed;
        total.failed += swept.failed;
        total.left += swept.left;
    }
    assert_eq!(
        total,
        sweeper::Swept {
            charged_at_bound: HOLDS,
            closed_meanwhile: HOLDS,
            ..sweeper::Swept::default()
        }
    );
    assert_eq!(
        stored_tokens(&app, "alice").await,
        Some(4000 - 30 * HOLDS as i64)
    );
    // Each charge saved as its chat, once.
    assert_eq!(stored_chats(&app, "alice").await, HOLDS);
    let account = stored_account(&app, "alice").await;
    assert_eq!(account["open_calls"].as_n().unwrap(), "0");
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_paid_chats_with_one_key_at_once_call_the_model_once_and_charge_once() {
    let gate = Gate::default();
    let stub = ConverseStub::start(Answer::gated(&gate, Answer::used("only once", 100, 20)));
    let (config, client) = usage_config(4).await;
    let app = Arc::new(patient_app(&stub, config, client));
    let token = signed_up(&app, "alice").await;
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (app, token) = (app.clone(), token.clone());
        running.spawn(async move { keyed_chat_as(&app, &token, "one-key", "same question").await });
    }
    // One holds its call open at the gate; the 19 others are told to wait
    // meanwhile. Should another reach the model, it waits at the gate too,
    // and the counts below say so once the time is up.
    let mut answers = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        while answers.len() < 19 {
            answers.push(running.join_next().await.unwrap().unwrap());
        }
    })
    .await;
    gate.open();
    while let Some(answer) = running.join_next().await {
        answers.push(answer.unwrap());
    }
    assert!(
        waited.is_ok(),
        "19 answers did not come while the model ran"
    );
    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert_eq!(statuses[..19], [409; 19], "{statuses:?}");
    assert_eq!(statuses[19], 200);
    for waiting in &answers[..19] {
        assert!(waiting.headers().contains_key("retry-after"));
    }
    assert_eq!(answers[19].headers()["tokens-charged"], "140");
    assert_eq!(stub.call_count(), 1);
    assert_eq!(stored_tokens(&app, "alice").await, Some(4000 - 140));
    assert_eq!(ledger_entries(&app, "alice", "ledger#hold#").await.len(), 1);
    // Once answered, the key replays at no charge.
    let replay = keyed_chat_as(&app, &token, "one-key", "same question").await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.headers()["tokens-charged"], "0");
    assert_eq!(json_of(&replay)["response"], "only once");
    assert_eq!(
        (stub.call_count(), stored_chats(&app, "alice").await),
        (1, 1)
    );
    assert_ledger_balances(&app, "alice").await;
}
