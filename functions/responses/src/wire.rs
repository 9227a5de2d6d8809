//! What goes back to a Responses client: a `response` object, or the
//! events of a stream, each a server-sent event named by its `type` and
//! numbered by `sequence_number`, as OpenAI sends them.

use chat_core::pricing::Usage;
use chat_core::responder::Finish;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::request::ResponseRequest;

/// One response: what every event of it shares.
pub struct Reply<'a> {
    /// `resp_` and the saved chat's id, so a reply can be found in
    /// `/chats/`; its one message is `msg_` and the same id.
    pub id: String,
    pub message_id: String,
    pub created_at: i64,
    pub model: &'a str,
    pub request: &'a ResponseRequest,
}

impl<'a> Reply<'a> {
    /// `created_at` is the id's own time (a UUIDv7), so a replay names the
    /// same second as the first answer.
    pub fn new(chat_id: Uuid, model: &'a str, request: &'a ResponseRequest) -> Self {
        let created_at = chat_id
            .get_timestamp()
            .map_or(0, |at| at.to_unix().0 as i64);
        Reply {
            id: format!("resp_{}", chat_id.simple()),
            message_id: format!("msg_{}", chat_id.simple()),
            created_at,
            model,
            request,
        }
    }

    /// The `response` object, in progress (no output yet, and no usage:
    /// OpenAI's schema has no null for it) or done.
    pub fn response(&self, done: Option<(&str, Finish, Usage)>) -> Value {
        let sampling = &self.request.completion.sampling;
        let mut response = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": "in_progress",
            "error": null,
            "incomplete_details": null,
            "instructions": self.request.instructions,
            "max_output_tokens": self.request.max_output_tokens,
            "model": self.model,
            "output": [],
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "store": false,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "truncation": "disabled",
            "metadata": {},
        });
        if let Some((text, finish, usage)) = done {
            let (status, reason) = status_of(finish);
            response["status"] = json!(status);
            if let Some(reason) = reason {
                response["incomplete_details"] = json!({ "reason": reason });
            }
            response["output"] = json!([self.message(Some((text, status)))]);
            response["usage"] = usage_of(usage);
        }
        response
    }

    /// The reply's one output item: empty while it is written.
    pub fn message(&self, done: Option<(&str, &str)>) -> Value {
        let (content, status) = match done {
            Some((text, status)) => (json!([output_text(text)]), status),
            None => (json!([]), "in_progress"),
        };
        json!({
            "type": "message",
            "id": self.message_id,
            "status": status,
            "role": "assistant",
            "content": content,
        })
    }
}

/// A finish as a response's status and, when incomplete, why.
pub fn status_of(finish: Finish) -> (&'static str, Option<&'static str>) {
    match finish {
        Finish::Stop | Finish::ToolCalls => ("completed", None),
        Finish::Length => ("incomplete", Some("max_output_tokens")),
        Finish::ContentFilter => ("incomplete", Some("content_filter")),
    }
}

pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The events of one stream, numbered as they are made.
pub struct Events<'a> {
    pub reply: &'a Reply<'a>,
    next: u64,
}

impl<'a> Events<'a> {
    pub fn new(reply: &'a Reply<'a>) -> Self {
        Events { reply, next: 0 }
    }

    /// `response.created`, `response.in_progress`, then the message and
    /// its text part opened.
    pub fn opening(&mut self) -> Vec<Vec<u8>> {
        let response = self.reply.response(None);
        let item = self.reply.message(None);
        vec![
            self.event("response.created", json!({ "response": response })),
            self.event("response.in_progress", json!({ "response": response })),
            self.event(
                "response.output_item.added",
                json!({"output_index": 0, "item": item}),
            ),
            self.event(
                "response.content_part.added",
                json!({"item_id": self.reply.message_id, "output_index": 0, "content_index": 0, "part": output_text("")}),
            ),
        ]
    }

    pub fn delta(&mut self, text: &str) -> Vec<u8> {
        let item_id = self.reply.message_id.clone();
        self.event(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": text, "logprobs": []}),
        )
    }

    /// The text, part and message closed, then `response.completed` (or
    /// `response.incomplete`) with the whole response and its usage.
    pub fn closing(&mut self, text: &str, finish: Finish, usage: Usage) -> Vec<Vec<u8>> {
        let (status, _) = status_of(finish);
        let item_id = self.reply.message_id.clone();
        let last = match status {
            "completed" => "response.completed",
            _ => "response.incomplete",
        };
        vec![
            self.event(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            ),
            self.event(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": output_text(text)}),
            ),
            self.event(
                "response.output_item.done",
                json!({"output_index": 0, "item": self.reply.message(Some((text, status)))}),
            ),
            self.event(
                last,
                json!({"response": self.reply.response(Some((text, finish, usage)))}),
            ),
        ]
    }

    /// A failure after the stream began, when the status line is long
    /// gone: OpenAI's `error` event.
    pub fn error(&mut self, error: &Value) -> Vec<u8> {
        let error = &error["error"];
        self.event(
            "error",
            json!({"code": error["code"], "message": error["message"], "param": error["param"]}),
        )
    }

    fn event(&mut self, kind: &str, mut fields: Value) -> Vec<u8> {
        fields["type"] = json!(kind);
        fields["sequence_number"] = json!(self.next);
        self.next += 1;
        format!("event: {kind}\ndata: {fields}\n\n").into_bytes()
    }
}

/// OpenAI's usage for responses: `input_tokens` counts every input token,
/// those read from or written to the prompt cache too, which the details
/// name apart. No reasoning is billed apart here.
fn usage_of(usage: Usage) -> Value {
    let input = usage.prompt_tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input.saturating_add(usage.output_tokens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ResponseRequest {
        let body = json!({"model": "dummy", "input": "Hi"});
        let Value::Object(body) = body else { panic!() };
        crate::request::parse(body, 50).unwrap()
    }

    #[test]
    fn a_reply_cut_by_its_cap_is_incomplete_for_max_output_tokens() {
        let request = request();
        let reply = Reply::new(Uuid::nil(), "dummy", &request);
        let usage = Usage {
            input_tokens: 3,
            output_tokens: 2,
            ..Default::default()
        };
        let whole = reply.response(Some(("AI", Finish::Length, usage)));
        assert_eq!(whole["status"], "incomplete");
        assert_eq!(whole["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(whole["output"][0]["status"], "incomplete");
        assert_eq!(whole["usage"]["total_tokens"], 5);
        assert_eq!(whole["id"], "resp_00000000000000000000000000000000");
        let done = reply.response(Some(("AI", Finish::Stop, usage)));
        assert_eq!(done["status"], "completed");
        assert!(done["incomplete_details"].is_null());
        assert_eq!(done["output"][0]["content"][0]["text"], "AI");
    }

    #[test]
    fn events_are_named_by_type_and_numbered_from_zero() {
        let request = request();
        let reply = Reply::new(Uuid::nil(), "dummy", &request);
        let mut events = Events::new(&reply);
        let mut all = events.opening();
        all.push(events.delta("A"));
        all.extend(events.closing("A", Finish::Stop, Usage::default()));
        let kinds: Vec<(String, u64)> = all
            .iter()
            .map(|bytes| {
                let text = String::from_utf8(bytes.clone()).unwrap();
                let (name, data) = text.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap().trim_end()).unwrap();
                assert_eq!(name.strip_prefix("event: "), data["type"].as_str());
                (
                    data["type"].as_str().unwrap().to_owned(),
                    data["sequence_number"].as_u64().unwrap(),
                )
            })
            .collect();
        let numbers: Vec<u64> = kinds.iter().map(|(_, n)| *n).collect();
        assert_eq!(numbers, (0..9).collect::<Vec<_>>());
        assert_eq!(kinds[0].0, "response.created");
        assert_eq!(kinds[4].0, "response.output_text.delta");
        assert_eq!(kinds[8].0, "response.completed");
    }
}
