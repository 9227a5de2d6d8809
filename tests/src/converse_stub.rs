//! A local stand-in for Bedrock's Converse endpoint
//! (`POST /model/{modelId}/converse`), on a loopback port of its own, so the
//! chat function's model path runs through the real SDK (serialisation,
//! error parsing, retries, timeouts) without AWS.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use chat::model::{BedrockResponder, ModelConfig};
use chat_core::app::http_client;
use serde_json::{json, Value};

/// What the stand-in answers to one call.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A Converse reply whose message is this text (usage: 12 in, 5 out).
    Text(String),
    /// A Converse reply with this text, reporting this usage.
    Used {
        text: String,
        input_tokens: u64,
        output_tokens: u64,
    },
    /// A Converse reply whose message has no content blocks.
    Empty,
    /// A Bedrock error: the status, and the type in `x-amzn-errortype`.
    Error {
        status: u16,
        error_type: &'static str,
    },
    /// A bare status with a body that is not Bedrock's.
    Status(u16),
    /// The answer, after a wait.
    After(Duration, Box<Answer>),
}

impl Answer {
    pub fn text(text: &str) -> Self {
        Answer::Text(text.to_owned())
    }

    /// A reply whose model reports `input_tokens` read and `output_tokens`
    /// written.
    pub fn used(text: &str, input_tokens: u64, output_tokens: u64) -> Self {
        Answer::Used {
            text: text.to_owned(),
            input_tokens,
            output_tokens,
        }
    }

    pub fn error(status: u16, error_type: &'static str) -> Self {
        Answer::Error { status, error_type }
    }

    pub fn after(delay: Duration, answer: Answer) -> Self {
        Answer::After(delay, Box::new(answer))
    }
}

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Call {
    /// From the path, percent-decoded.
    pub model_id: String,
    /// The JSON body as sent.
    pub body: Value,
}

impl Call {
    /// The text of the first content block of the first message.
    pub fn prompt(&self) -> Option<&str> {
        self.body["messages"][0]["content"][0]["text"].as_str()
    }
}

type Script = dyn Fn(usize) -> Answer + Send + Sync;

pub struct ConverseStub {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl ConverseStub {
    /// A stand-in giving every call the same answer.
    pub fn start(answer: Answer) -> Self {
        Self::scripted(move |_| answer.clone())
    }

    /// A stand-in whose answer to the n-th call (from 0) is `script(n)`.
    pub fn scripted(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let recorded = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let calls = recorded.clone();
                let script = script.clone();
                std::thread::spawn(move || serve(stream, &calls, &*script));
            }
        });
        ConverseStub { url, calls }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every call so far, in the order they arrived.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn call_count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// The production responder, pointed at this stand-in with dummy
    /// credentials, with `model`'s settings otherwise.
    pub fn responder(&self, mut model: ModelConfig) -> BedrockResponder {
        model.endpoint_url = Some(self.url.clone());
        let base = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "stub",
                "stub",
                None,
                None,
                "converse-stub",
            ))
            .http_client(http_client());
        BedrockResponder::new(base, &model)
    }
}

/// Answers the requests of one connection, kept alive as the SDK expects.
fn serve(stream: TcpStream, calls: &Mutex<Vec<Call>>, script: &Script) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while let Some((path, body)) = read_request(&mut reader) {
        let call = Call {
            model_id: model_id_of(&path),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        let index = {
            let mut calls = calls.lock().unwrap();
            calls.push(call);
            calls.len() - 1
        };
        let answer = if path.ends_with("/converse") {
            script(index)
        } else {
            Answer::error(404, "UnknownOperationException")
        };
        // The client may have given up (a timeout test): nothing to do.
        if write_answer(&mut writer, &answer).is_err() {
            return;
        }
    }
}

/// The path and body of the next request, or `None` when the client closed
/// the connection.
fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, body))
}

/// `/model/anthropic.claude-v2%3A1/converse` -> `anthropic.claude-v2:1`.
fn model_id_of(path: &str) -> String {
    let encoded = path
        .strip_prefix("/model/")
        .and_then(|rest| rest.strip_suffix("/converse"))
        .unwrap_or_default();
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn write_answer(writer: &mut impl Write, answer: &Answer) -> std::io::Result<()> {
    let (status, error_type, body) = match answer {
        Answer::After(delay, answer) => {
            std::thread::sleep(*delay);
            return write_answer(writer, answer);
        }
        Answer::Text(text) => (200, None, converse_reply(json!([{ "text": text }]), 12, 5)),
        Answer::Used {
            text,
            input_tokens,
            output_tokens,
        } => (
            200,
            None,
            converse_reply(json!([{ "text": text }]), *input_tokens, *output_tokens),
        ),
        Answer::Empty => (200, None, converse_reply(json!([]), 12, 5)),
        Answer::Error { status, error_type } => (
            *status,
            Some(*error_type),
            json!({ "message": format!("stub {error_type}") }),
        ),
        Answer::Status(status) => (*status, None, json!({ "detail": "not Bedrock's shape" })),
    };
    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(error_type) = error_type {
        head.push_str(&format!("x-amzn-errortype: {error_type}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    writer.write_all(body.as_bytes())?;
    writer.flush()
}

/// A Converse response with every field the SDK requires.
fn converse_reply(content: Value, input: u64, output: u64) -> Value {
    json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": "end_turn",
        "usage": { "inputTokens": input, "outputTokens": output, "totalTokens": input + output },
        "metrics": { "latencyMs": 42 },
    })
}

#[cfg(test)]
mod tests {
    use super::model_id_of;

    #[test]
    fn a_model_id_is_read_back_from_its_path() {
        assert_eq!(
            model_id_of("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
    }
}
