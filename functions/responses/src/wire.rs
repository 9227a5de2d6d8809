//! What goes back to a Responses client: a `response` object, or the
//! events of a stream, each a server-sent event named by its `type` and
//! numbered by `sequence_number`, as OpenAI sends them.

use chat_core::billing::ToolDelta;
use chat_core::pricing::Usage;
use chat_core::responder::{Finish, ToolCall};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::request::ResponseRequest;

/// One response: what every event of it shares.
pub struct Reply<'a> {
    /// `resp_` and the saved chat's id, so a reply can be found in
    /// `/chats/`; its message is `msg_` and the same id, its function
    /// calls `fc_`, the same id and their place.
    pub id: String,
    pub message_id: String,
    pub created_at: i64,
    pub model: &'a str,
    pub request: &'a ResponseRequest,
}

/// One output item as it is written: the reply's text, or a function call.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

impl Item {
    fn id(&self) -> &str {
        match self {
            Item::Message { id, .. } | Item::Call { id, .. } => id,
        }
    }

    /// As the output carries it; `status` is the item's, a message's
    /// content is empty until it is done.
    pub fn json(&self, status: &str) -> Value {
        match self {
            Item::Message { id, text } => {
                let content = if status == "in_progress" {
                    json!([])
                } else {
                    json!([output_text(text)])
                };
                json!({"type": "message", "id": id, "status": status, "role": "assistant",
                    "content": content})
            }
            Item::Call {
                id,
                call_id,
                name,
                arguments,
            } => json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                "arguments": arguments, "status": status}),
        }
    }
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

    /// A whole answer's items: its text (when it has some, or called no
    /// function), then each call.
    pub fn items(&self, text: &str, calls: &[ToolCall]) -> Vec<Item> {
        let mut items = Vec::new();
        if !text.is_empty() || calls.is_empty() {
            items.push(Item::Message {
                id: self.message_id.clone(),
                text: text.to_owned(),
            });
        }
        items.extend(calls.iter().enumerate().map(|(i, call)| self.call(i, call)));
        items
    }

    fn call(&self, index: usize, call: &ToolCall) -> Item {
        Item::Call {
            id: format!("fc_{}_{index}", self.id.trim_start_matches("resp_")),
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        }
    }

    /// The `response` object, in progress (no output yet, and no usage:
    /// OpenAI's schema has no null for it) or done with its items.
    pub fn response(&self, done: Option<(&[Item], Finish, Usage)>) -> Value {
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
            "tool_choice": self.request.tool_choice,
            "tools": self.request.tools,
            "truncation": "disabled",
            "metadata": {},
        });
        if let Some((items, finish, usage)) = done {
            let (status, reason) = status_of(finish);
            response["status"] = json!(status);
            if let Some(reason) = reason {
                response["incomplete_details"] = json!({ "reason": reason });
            }
            // Every item but the last was whole when the next began.
            let last = items.len().saturating_sub(1);
            let output: Vec<Value> = items
                .iter()
                .enumerate()
                .map(|(i, item)| item.json(if i == last { status } else { "completed" }))
                .collect();
            response["output"] = json!(output);
            response["usage"] = usage_of(usage);
        }
        response
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

/// The events of one stream, numbered as they are made, and the items
/// they have opened: each item is added when its first piece comes and
/// done when the next item begins or the reply ends.
pub struct Events<'a> {
    pub reply: &'a Reply<'a>,
    next: u64,
    items: Vec<Item>,
    /// The item at `items`' end is still being written.
    open: bool,
    /// The item each of the model's tool calls (by its index) became.
    calls: Vec<(usize, usize)>,
}

impl<'a> Events<'a> {
    pub fn new(reply: &'a Reply<'a>) -> Self {
        Events {
            reply,
            next: 0,
            items: Vec::new(),
            open: false,
            calls: Vec::new(),
        }
    }

    /// `response.created` and `response.in_progress`.
    pub fn opening(&mut self) -> Vec<Vec<u8>> {
        let response = self.reply.response(None);
        vec![
            self.event("response.created", json!({ "response": response })),
            self.event("response.in_progress", json!({ "response": response })),
        ]
    }

    /// A piece of the reply's text: its message (and text part) opened
    /// first if the last item is not it; no delta for no text.
    pub fn delta(&mut self, text: &str) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        if !(self.open && matches!(self.items.last(), Some(Item::Message { .. }))) {
            events.extend(self.close_open("completed"));
            // The first message is `msg_` and the chat's id; one after a
            // function call (rare) adds its place.
            let id = match self.items.len() {
                0 => self.reply.message_id.clone(),
                n => format!("{}_{n}", self.reply.message_id),
            };
            events.extend(self.add(Item::Message {
                id,
                text: String::new(),
            }));
        }
        let at = self.items.len() - 1;
        if text.is_empty() {
            return events;
        }
        if let Some(Item::Message { id, text: all }) = self.items.last_mut() {
            all.push_str(text);
            let id = id.clone();
            events.push(self.event(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": at, "content_index": 0, "delta": text, "logprobs": []}),
            ));
        }
        events
    }

    /// A function call begun (the item added) or more of its arguments.
    pub fn tool(&mut self, index: usize, delta: ToolDelta<'_>) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        match delta {
            ToolDelta::Start { id, name } => {
                events.extend(self.close_open("completed"));
                let call = ToolCall {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    arguments: String::new(),
                };
                let item = self.reply.call(index, &call);
                self.calls.push((index, self.items.len()));
                events.extend(self.add(item));
            }
            ToolDelta::Arguments(more) => {
                let Some(&(_, at)) = self.calls.iter().find(|(i, _)| *i == index) else {
                    return events;
                };
                if let Item::Call { id, arguments, .. } = &mut self.items[at] {
                    arguments.push_str(more);
                    let id = id.clone();
                    events.push(self.event(
                        "response.function_call_arguments.delta",
                        json!({"item_id": id, "output_index": at, "delta": more}),
                    ));
                }
            }
        }
        events
    }

    /// The open item done, then `response.completed` (or
    /// `response.incomplete`) with the whole response and its usage. A
    /// reply with nothing in it still has its (empty) message.
    pub fn closing(&mut self, finish: Finish, usage: Usage) -> Vec<Vec<u8>> {
        let (status, _) = status_of(finish);
        let mut events = Vec::new();
        if self.items.is_empty() {
            events.extend(self.delta(""));
        }
        events.extend(self.close_open(status));
        let last = match status {
            "completed" => "response.completed",
            _ => "response.incomplete",
        };
        let response = self.reply.response(Some((&self.items, finish, usage)));
        events.push(self.event(last, json!({ "response": response })));
        events
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

    /// `response.output_item.added`, and a message's text part.
    fn add(&mut self, item: Item) -> Vec<Vec<u8>> {
        let at = self.items.len();
        let mut events = vec![self.event(
            "response.output_item.added",
            json!({"output_index": at, "item": item.json("in_progress")}),
        )];
        if let Item::Message { id, .. } = &item {
            events.push(self.event(
                "response.content_part.added",
                json!({"item_id": id, "output_index": at, "content_index": 0, "part": output_text("")}),
            ));
        }
        self.items.push(item);
        self.open = true;
        events
    }

    /// The open item's last events: its text (and part) or arguments
    /// done, then `response.output_item.done` with it whole.
    fn close_open(&mut self, status: &str) -> Vec<Vec<u8>> {
        if !self.open {
            return Vec::new();
        }
        self.open = false;
        let at = self.items.len() - 1;
        let item = self.items[at].clone();
        let id = item.id().to_owned();
        let mut events = match &item {
            Item::Message { text, .. } => vec![
                self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0, "text": text, "logprobs": []}),
                ),
                self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0, "part": output_text(text)}),
                ),
            ],
            Item::Call {
                name, arguments, ..
            } => vec![self.event(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": at, "name": name, "arguments": arguments}),
            )],
        };
        events.push(self.event(
            "response.output_item.done",
            json!({"output_index": at, "item": item.json(status)}),
        ));
        events
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
        let items = reply.items("AI", &[]);
        let whole = reply.response(Some((&items, Finish::Length, usage)));
        assert_eq!(whole["status"], "incomplete");
        assert_eq!(whole["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(whole["output"][0]["status"], "incomplete");
        assert_eq!(whole["usage"]["total_tokens"], 5);
        assert_eq!(whole["id"], "resp_00000000000000000000000000000000");
        let done = reply.response(Some((&items, Finish::Stop, usage)));
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
        all.extend(events.delta("A"));
        all.extend(events.closing(Finish::Stop, Usage::default()));
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

    fn parsed(bytes: &[u8]) -> Value {
        let text = std::str::from_utf8(bytes).unwrap();
        let data = text.split_once("\ndata: ").unwrap().1.trim_end();
        serde_json::from_str(data).unwrap()
    }

    #[test]
    fn a_stream_that_calls_functions_closes_its_text_first_and_ends_with_the_same_items() {
        let request = request();
        let reply = Reply::new(Uuid::nil(), "dummy", &request);
        let mut events = Events::new(&reply);
        let mut all = events.opening();
        all.extend(events.delta("Looking"));
        for (i, (id, city)) in [("c1", "Oslo"), ("c2", "Rome")].into_iter().enumerate() {
            let name = "weather";
            all.extend(events.tool(i, ToolDelta::Start { id, name }));
            all.extend(events.tool(i, ToolDelta::Arguments("{\"city\":")));
            all.extend(events.tool(i, ToolDelta::Arguments(&format!("\"{city}\"}}"))));
        }
        all.extend(events.closing(Finish::ToolCalls, Usage::default()));
        let all: Vec<Value> = all.iter().map(|e| parsed(e)).collect();
        let kinds: Vec<(&str, Option<u64>)> = all
            .iter()
            .map(|e| (e["type"].as_str().unwrap(), e["output_index"].as_u64()))
            .collect();
        let call = |at| {
            [
                ("response.output_item.added", Some(at)),
                ("response.function_call_arguments.delta", Some(at)),
                ("response.function_call_arguments.delta", Some(at)),
                ("response.function_call_arguments.done", Some(at)),
                ("response.output_item.done", Some(at)),
            ]
        };
        let mut expected = vec![
            ("response.created", None),
            ("response.in_progress", None),
            ("response.output_item.added", Some(0)),
            ("response.content_part.added", Some(0)),
            ("response.output_text.delta", Some(0)),
            ("response.output_text.done", Some(0)),
            ("response.content_part.done", Some(0)),
            ("response.output_item.done", Some(0)),
        ];
        expected.extend(call(1));
        expected.extend(call(2));
        expected.push(("response.completed", None));
        assert_eq!(kinds, expected);
        let done = &all[all.len() - 1]["response"];
        let calls = [
            reply.call(
                0,
                &ToolCall {
                    id: "c1".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Oslo\"}".into(),
                },
            ),
            reply.call(
                1,
                &ToolCall {
                    id: "c2".into(),
                    name: "weather".into(),
                    arguments: "{\"city\":\"Rome\"}".into(),
                },
            ),
        ];
        let whole: Vec<ToolCall> = calls
            .iter()
            .map(|item| match item {
                Item::Call {
                    call_id,
                    name,
                    arguments,
                    ..
                } => ToolCall {
                    id: call_id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
                Item::Message { .. } => unreachable!(),
            })
            .collect();
        // The streamed response ends as the whole answer would be.
        let items = reply.items("Looking", &whole);
        assert_eq!(
            done,
            &reply.response(Some((&items, Finish::ToolCalls, Usage::default())))
        );
        assert_eq!(done["output"][1]["type"], "function_call");
        assert_eq!(done["output"][2]["arguments"], "{\"city\":\"Rome\"}");
        assert_eq!(done["output"][2]["status"], "completed");
        assert_eq!(all[11]["name"], "weather");
        assert_eq!(all[11]["arguments"], "{\"city\":\"Oslo\"}");
    }

    #[test]
    fn a_reply_of_only_function_calls_has_no_message() {
        let request = request();
        let reply = Reply::new(Uuid::nil(), "dummy", &request);
        let call = ToolCall {
            id: "c".into(),
            name: "f".into(),
            arguments: "{}".into(),
        };
        let items = reply.items("", std::slice::from_ref(&call));
        assert_eq!(items.len(), 1);
        let whole = reply.response(Some((&items, Finish::ToolCalls, Usage::default())));
        assert_eq!(whole["output"][0]["call_id"], "c");
        assert_eq!(
            whole["output"][0]["id"],
            format!("fc_{}_0", Uuid::nil().simple())
        );
        // Nothing at all still answers with an (empty) message.
        let mut events = Events::new(&reply);
        events.opening();
        let closing: Vec<Value> = events
            .closing(Finish::Stop, Usage::default())
            .iter()
            .map(|e| parsed(e))
            .collect();
        assert_eq!(closing.len(), 6);
        assert_eq!(
            closing[5]["response"]["output"][0]["content"][0]["text"],
            ""
        );
    }
}
