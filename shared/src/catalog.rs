//! The catalog: the models a deployment serves, each priced its own way.
//!
//! One JSON document, read once per cold start: from the file
//! `CATALOG_FILE` names (`make run`), or the text of `CATALOG` (the
//! template's `Catalog` parameter in AWS). Without either, the deployment
//! serves one model from the older settings (`MODEL_ID`, `PRICING`, ...).
//!
//! ```json
//! {"default": "dummy",
//!  "models": [
//!    {"id": "dummy", "flat": 100},
//!    {"id": "haiku", "bedrock_model": "anthropic.claude-3-5-haiku-20241022-v1:0",
//!     "price_per_1000": {"input": 1, "output": 5, "cache_read": 0, "cache_write": 2},
//!     "max_tokens": 4096, "cache": true}
//!  ]}
//! ```
//!
//! A model without `bedrock_model` is answered by the built-in dummy. Prices
//! are whole balance tokens, per chat (`flat`) or per 1000 model tokens
//! (`price_per_1000`, the sum rounded up once per call). A price of 0 is
//! refused unless the model says `"free": true`; cache prices left out cost
//! what input does. Every fault is refused at load with the line it is on.
//!
//! A model of `"kind": "embedding"` answers `/v1/embeddings` only: it reads
//! and writes no text, so it is priced per 1000 input tokens alone
//! (`price_per_1000: {"input": N}`), takes none of the chat settings, and
//! is never the default (which a chat without `model` gets).

use serde::Deserialize;

use crate::domain::sha256_hex;
use crate::pricing::{Pricing, UsagePrices};

/// The most a price may be, as the settings allow: far inside `i64` for any
/// usage a call can report.
const MAX_PRICE: u64 = 1_000_000;
/// The most tokens any reply may be asked for (Bedrock's common maximum).
pub const MAX_REPLY_TOKENS: u32 = 8192;
/// A model's longest reply when neither its entry nor `MODEL_MAX_TOKENS`
/// says: it bounds what one call can cost.
pub const DEFAULT_REPLY_TOKENS: u32 = 1024;
/// Bedrock's own limit on a model id or ARN.
const MAX_MODEL_ID_LENGTH: usize = 2048;
/// What clients may name a model: OpenAI's ids are of this shape too.
const MAX_ID_LENGTH: usize = 256;

/// What a model does: chat (`/chat/`, `/v1/chat/completions`,
/// `/v1/responses`), or turn text into vectors (`/v1/embeddings`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    #[default]
    Chat,
    Embedding,
}

impl ModelKind {
    /// As the catalog spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
        }
    }
}

/// A catalog, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// The id a request without `model` gets.
    pub default: String,
    pub models: Vec<CatalogModel>,
    /// The first 12 hex digits of the document's SHA-256: which catalog a
    /// hold and its chat were priced by.
    pub version: String,
}

/// One model of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogModel {
    /// What clients name it (`model`).
    pub id: String,
    /// The Bedrock model that answers; `None`: the built-in dummy.
    pub bedrock_model: Option<String>,
    pub pricing: Pricing,
    /// Its longest reply; `None`: the deployment's `MODEL_MAX_TOKENS`.
    pub max_tokens: Option<u32>,
    /// A cache point after the system prompt (prompt caching).
    pub cache: bool,
    /// The model reads images in user messages.
    pub images: bool,
    /// Chat, or embeddings.
    pub kind: ModelKind,
}

/// Why a catalog was refused: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("catalog line {line}: {message}")]
pub struct CatalogError {
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    default: String,
    models: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    bedrock_model: Option<String>,
    flat: Option<u64>,
    price_per_1000: Option<Prices>,
    max_tokens: Option<u32>,
    #[serde(default)]
    free: bool,
    #[serde(default)]
    cache: bool,
    #[serde(default)]
    images: bool,
    #[serde(default)]
    kind: ModelKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Prices {
    input: u64,
    /// Required of a chat model, refused for an embedding model (which
    /// writes no tokens): checked in [`pricing_of`], to say which.
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

impl Catalog {
    /// The catalog in `text`, checked; the error names the line at fault.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let document: Document = serde_json::from_str(text).map_err(|e| CatalogError {
            line: e.line(),
            message: e.to_string(),
        })?;
        let mut models: Vec<CatalogModel> = Vec::new();
        for entry in document.models {
            // The entry's own `"id"`: the second one of a duplicate.
            let nth = models.iter().filter(|m| m.id == entry.id).count();
            let at = |message: String| CatalogError {
                line: line_of_id(text, &entry.id, nth),
                message: format!("model {:?}: {message}", entry.id),
            };
            let valid_id = !entry.id.is_empty()
                && entry.id.len() <= MAX_ID_LENGTH
                && entry.id.chars().all(|c| c.is_ascii_graphic());
            if !valid_id {
                return Err(at(format!(
                    "an id is 1-{MAX_ID_LENGTH} printable ASCII characters without spaces"
                )));
            }
            if models.iter().any(|m| m.id == entry.id) {
                return Err(at("is listed twice".into()));
            }
            if let Some(bedrock) = &entry.bedrock_model {
                if bedrock.is_empty()
                    || bedrock.len() > MAX_MODEL_ID_LENGTH
                    || !bedrock.chars().all(|c| c.is_ascii_graphic())
                {
                    return Err(at("bedrock_model is not a Bedrock model id".into()));
                }
            }
            if let Some(max) = entry.max_tokens {
                if !(1..=MAX_REPLY_TOKENS).contains(&max) {
                    return Err(at(format!("max_tokens must be 1 to {MAX_REPLY_TOKENS}")));
                }
            }
            if entry.kind == ModelKind::Embedding {
                embedding_rules(&entry).map_err(at)?;
            }
            let pricing = pricing_of(&entry).map_err(at)?;
            models.push(CatalogModel {
                id: entry.id,
                bedrock_model: entry.bedrock_model,
                pricing,
                max_tokens: entry.max_tokens,
                cache: entry.cache,
                images: entry.images,
                kind: entry.kind,
            });
        }
        if models.is_empty() {
            return Err(CatalogError {
                line: line_of(text, "\"models\""),
                message: "the catalog lists no model".into(),
            });
        }
        let Some(default) = models.iter().find(|m| m.id == document.default) else {
            return Err(CatalogError {
                line: line_of(text, "\"default\""),
                message: format!(
                    "the default {:?} is not a model of the catalog",
                    document.default
                ),
            });
        };
        // The default answers chats that name no model: an embedding
        // model cannot.
        if default.kind == ModelKind::Embedding {
            return Err(CatalogError {
                line: line_of(text, "\"default\""),
                message: format!(
                    "the default {:?} is an embedding model; the default must be a chat model",
                    document.default
                ),
            });
        }
        Ok(Catalog {
            default: document.default,
            models,
            version: sha256_hex(text.as_bytes())[..12].to_owned(),
        })
    }

    /// The catalog the environment names (`CATALOG_FILE`, else `CATALOG`),
    /// or `None` for a deployment of one model from the older settings.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let text = match (set("CATALOG_FILE"), set("CATALOG")) {
            (Some(path), _) => {
                std::fs::read_to_string(&path).map_err(|e| format!("CATALOG_FILE {path}: {e}"))?
            }
            (None, Some(text)) => text,
            (None, None) => return Ok(None),
        };
        Catalog::parse(&text)
            .map(Some)
            .map_err(|e| format!("invalid catalog: {e}"))
    }

    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// What an embedding model may not say: it writes no reply, so nothing of
/// a reply's settings or prices, and it reads no images. Its price is per
/// input token (`price_per_1000.input`), the one thing it is charged for.
fn embedding_rules(entry: &Entry) -> Result<(), String> {
    let chat_only = [
        (entry.flat.is_some(), "flat"),
        (entry.max_tokens.is_some(), "max_tokens"),
        (entry.cache, "cache"),
        (entry.images, "images"),
    ];
    if let Some((_, name)) = chat_only.iter().find(|(set, _)| *set) {
        return Err(format!(
            "an embedding model takes no {name}: it is priced by price_per_1000.input alone"
        ));
    }
    let Some(prices) = &entry.price_per_1000 else {
        return Err("an embedding model needs price_per_1000.input".into());
    };
    let reply_prices = [
        (prices.output.is_some(), "output"),
        (prices.cache_read.is_some(), "cache_read"),
        (prices.cache_write.is_some(), "cache_write"),
    ];
    if let Some((_, name)) = reply_prices.iter().find(|(set, _)| *set) {
        return Err(format!(
            "an embedding model has no price_per_1000.{name}: it is charged for input tokens only"
        ));
    }
    Ok(())
}

/// An entry's price: exactly one of `flat` and `price_per_1000`, never 0
/// unless the entry says it is free. An embedding model's is its input
/// price, every other part 0 (it reports input tokens only).
fn pricing_of(entry: &Entry) -> Result<Pricing, String> {
    let checked = |name: &str, price: u64, may_be_zero: bool| -> Result<u32, String> {
        if price > MAX_PRICE {
            return Err(format!("{name} is over {MAX_PRICE}"));
        }
        if price == 0 && !may_be_zero {
            return Err(format!(
                "{name} is 0, which would give every call away; set \"free\": true to mean it"
            ));
        }
        Ok(price as u32)
    };
    match (entry.flat, &entry.price_per_1000) {
        (Some(flat), None) => Ok(Pricing::Flat(checked("flat", flat, entry.free)?)),
        (None, Some(p)) if entry.kind == ModelKind::Embedding => Ok(Pricing::Usage(UsagePrices {
            input_per_1000: checked("price_per_1000.input", p.input, entry.free)?,
            ..UsagePrices::default()
        })),
        (None, Some(p)) => {
            let input = checked("price_per_1000.input", p.input, entry.free)?;
            let Some(output) = p.output else {
                return Err("price_per_1000.output is missing: a chat model is priced for what it writes too".into());
            };
            Ok(Pricing::Usage(UsagePrices {
                input_per_1000: input,
                output_per_1000: checked("price_per_1000.output", output, entry.free)?,
                // A cache read or write is input at a price of its own,
                // which may well be 0; left out, it costs what input does.
                cache_read_per_1000: checked(
                    "price_per_1000.cache_read",
                    p.cache_read.unwrap_or(u64::from(input)),
                    true,
                )?,
                cache_write_per_1000: checked(
                    "price_per_1000.cache_write",
                    p.cache_write.unwrap_or(u64::from(input)),
                    true,
                )?,
            }))
        }
        _ => Err("give exactly one of flat and price_per_1000".into()),
    }
}

/// The line (from 1) where `needle` first stands in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map_or(1, |at| text[..at].matches('\n').count() + 1)
}

/// The line of the `nth` (from 0) `"id": <id>` in `text`: where a fault in
/// that entry is shown.
fn line_of_id(text: &str, id: &str, nth: usize) -> usize {
    let quoted = serde_json::to_string(id).unwrap_or_default();
    text.match_indices(&quoted)
        .filter(|(at, _)| {
            let before = text[..*at].trim_end();
            before
                .strip_suffix(':')
                .is_some_and(|b| b.trim_end().ends_with("\"id\""))
        })
        .nth(nth)
        .map_or(1, |(at, _)| text[..at].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"default": "dummy",
 "models": [
   {"id": "dummy", "flat": 100},
   {"id": "haiku", "bedrock_model": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "price_per_1000": {"input": 1, "output": 5, "cache_read": 0, "cache_write": 2},
    "max_tokens": 4096}
 ]}"#;

    #[test]
    fn the_issues_example_is_a_catalog() {
        let catalog = Catalog::parse(EXAMPLE).unwrap();
        assert_eq!(catalog.default, "dummy");
        assert_eq!(catalog.models.len(), 2);
        assert_eq!(catalog.models[0].pricing, Pricing::Flat(100));
        assert_eq!(catalog.models[0].bedrock_model, None);
        assert_eq!(
            catalog.models[1].pricing,
            Pricing::Usage(UsagePrices {
                input_per_1000: 1,
                output_per_1000: 5,
                cache_read_per_1000: 0,
                cache_write_per_1000: 2,
            })
        );
        assert_eq!(catalog.models[1].max_tokens, Some(4096));
        assert_eq!(catalog.version.len(), 12);
    }

    fn refusal(text: &str) -> CatalogError {
        Catalog::parse(text).unwrap_err()
    }

    #[test]
    fn faults_are_refused_with_the_line_they_are_on() {
        // (document, line, words the message holds)
        let cases: [(&str, usize, &str); 10] = [
            (
                "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\", \"flat\": 0}]}",
                3,
                "set \"free\": true",
            ),
            (
                "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\", \"flat\": 1},\n {\"id\": \"a\", \"flat\": 2}]}",
                4,
                "listed twice",
            ),
            (
                "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\", \"flat\": 1, \"colour\": \"red\"}]}",
                3,
                "unknown field `colour`",
            ),
            (
                "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\"}]}",
                3,
                "exactly one of flat and price_per_1000",
            ),
            (
                "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\", \"flat\": 1,\n \"price_per_1000\": {\"input\": 1, \"output\": 1}}]}",
                3,
                "exactly one",
            ),
            (
                "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\",\n \"price_per_1000\": {\"input\": 1, \"output\": 0}}]}",
                3,
                "price_per_1000.output is 0",
            ),
            (
                "{\"default\": \"b\",\n \"models\": [\n {\"id\": \"a\", \"flat\": 1}]}",
                1,
                "not a model of the catalog",
            ),
            (
                "{\"default\": \"a\",\n \"models\": [\n {\"id\": \"a\", \"flat\": 1, \"max_tokens\": 9000}]}",
                3,
                "max_tokens",
            ),
            (
                "{\"default\": \"a b\",\n \"models\": [\n {\"id\": \"a b\", \"flat\": 1}]}",
                3,
                "printable ASCII",
            ),
            ("{\"default\": \"a\",\n \"models\": []}", 2, "no model"),
        ];
        for (text, line, words) in cases {
            let error = refusal(text);
            assert_eq!(error.line, line, "{text}: {error}");
            assert!(error.to_string().contains(words), "{text}: {error}");
            assert!(error
                .to_string()
                .starts_with(&format!("catalog line {line}:")));
        }
    }

    #[test]
    fn a_free_model_may_cost_nothing_and_cache_prices_default_to_input() {
        let catalog = Catalog::parse(
            r#"{"default": "gift", "models": [
                {"id": "gift", "flat": 0, "free": true},
                {"id": "m", "bedrock_model": "x", "price_per_1000": {"input": 3, "output": 15}}]}"#,
        )
        .unwrap();
        assert_eq!(catalog.models[0].pricing, Pricing::Flat(0));
        assert_eq!(
            catalog.models[1].pricing,
            Pricing::Usage(UsagePrices::plain(3, 15))
        );
    }

    #[test]
    fn a_model_takes_images_only_when_it_says_so() {
        let catalog = Catalog::parse(
            r#"{"default": "eyes", "models": [
                {"id": "eyes", "bedrock_model": "a.b", "flat": 1, "images": true},
                {"id": "blind", "bedrock_model": "a.c", "flat": 1}
            ]}"#,
        )
        .unwrap();
        let takes: Vec<bool> = catalog.models.iter().map(|m| m.images).collect();
        assert_eq!(takes, [true, false]);
    }

    #[test]
    fn the_environment_names_a_file_or_the_text_or_nothing() {
        assert_eq!(Catalog::from_lookup(|_| None), Ok(None));
        let text = |name: &str| (name == "CATALOG").then(|| EXAMPLE.to_owned());
        assert_eq!(Catalog::from_lookup(text).unwrap().unwrap().models.len(), 2);
        let missing = |name: &str| (name == "CATALOG_FILE").then(|| "/no/such/catalog".into());
        assert!(Catalog::from_lookup(missing)
            .unwrap_err()
            .contains("CATALOG_FILE /no/such/catalog"));
        let bad = |name: &str| (name == "CATALOG").then(|| "{".to_owned());
        assert!(Catalog::from_lookup(bad)
            .unwrap_err()
            .contains("catalog line 1"));
    }

    /// One model with `entry`'s fields after its id: accepted or not.
    fn accepts(entry: &str) -> bool {
        Catalog::parse(&format!(
            r#"{{"default": "m", "models": [{{"id": "m", {entry}}}]}}"#
        ))
        .is_ok()
    }

    #[test]
    fn a_bedrock_model_id_is_printable_and_within_bedrocks_length() {
        let longest = "a".repeat(MAX_MODEL_ID_LENGTH);
        let too_long = "a".repeat(MAX_MODEL_ID_LENGTH + 1);
        for (model, ok) in [
            ("anthropic.claude-3-haiku-20240307-v1:0", true),
            (longest.as_str(), true),
            (too_long.as_str(), false),
            ("", false),
            ("with space", false),
            ("tab\there", false),
        ] {
            assert_eq!(
                accepts(&format!(r#""bedrock_model": "{model}", "flat": 1"#)),
                ok,
                "{model:?}"
            );
        }
    }

    #[test]
    fn a_price_may_be_the_most_the_settings_allow_and_no_more() {
        for (price, ok) in [(MAX_PRICE, true), (MAX_PRICE + 1, false)] {
            assert_eq!(accepts(&format!(r#""flat": {price}"#)), ok, "flat {price}");
            assert_eq!(
                accepts(&format!(
                    r#""price_per_1000": {{"input": {price}, "output": 1}}"#
                )),
                ok,
                "input {price}"
            );
        }
    }

    const EMBEDDING: &str = r#"{"default": "chat",
 "models": [
   {"id": "chat", "flat": 1},
   {"id": "titan", "kind": "embedding", "bedrock_model": "amazon.titan-embed-text-v2:0",
    "price_per_1000": {"input": 2}}
 ]}"#;

    #[test]
    fn an_embedding_model_is_priced_per_input_token_alone() {
        let catalog = Catalog::parse(EMBEDDING).unwrap();
        assert_eq!(catalog.models[0].kind, ModelKind::Chat);
        let titan = &catalog.models[1];
        assert_eq!(titan.kind, ModelKind::Embedding);
        assert_eq!(
            titan.pricing,
            Pricing::Usage(UsagePrices {
                input_per_1000: 2,
                ..UsagePrices::default()
            })
        );
        let free = Catalog::parse(
            r#"{"default": "c", "models": [{"id": "c", "flat": 1},
                {"id": "e", "kind": "embedding", "price_per_1000": {"input": 0}, "free": true}]}"#,
        )
        .unwrap();
        assert_eq!(
            free.models[1].pricing,
            Pricing::Usage(UsagePrices::default())
        );
    }

    #[test]
    fn a_kind_is_spelled_as_the_catalog_spells_it() {
        for kind in [ModelKind::Chat, ModelKind::Embedding] {
            let read: ModelKind = serde_json::from_value(serde_json::json!(kind.as_str())).unwrap();
            assert_eq!(read, kind);
        }
        assert_eq!(ModelKind::Embedding.as_str(), "embedding");
    }

    #[test]
    fn an_embedding_models_faults_are_refused_with_their_line() {
        // (the embedding entry's fields after its id, words the message holds)
        let cases = [
            (
                r#""price_per_1000": {"input": 1, "output": 1}"#,
                "no price_per_1000.output",
            ),
            (
                r#""price_per_1000": {"input": 1, "cache_read": 0}"#,
                "no price_per_1000.cache_read",
            ),
            (
                r#""price_per_1000": {"input": 1, "cache_write": 0}"#,
                "no price_per_1000.cache_write",
            ),
            (
                r#""price_per_1000": {"input": 0}"#,
                "price_per_1000.input is 0",
            ),
            (r#""flat": 5"#, "takes no flat"),
            (
                r#""flat": 5, "price_per_1000": {"input": 1}"#,
                "takes no flat",
            ),
            (
                r#""price_per_1000": {"input": 1}, "max_tokens": 10"#,
                "takes no max_tokens",
            ),
            (
                r#""price_per_1000": {"input": 1}, "cache": true"#,
                "takes no cache",
            ),
            (
                r#""price_per_1000": {"input": 1}, "images": true"#,
                "takes no images",
            ),
            ("\"free\": true", "needs price_per_1000.input"),
        ];
        for (fields, words) in cases {
            let text = format!(
                "{{\"default\": \"c\",\n \"models\": [\n {{\"id\": \"c\", \"flat\": 1}},\n {{\"id\": \"e\", \"kind\": \"embedding\", {fields}}}]}}"
            );
            let error = refusal(&text);
            assert_eq!(error.line, 4, "{text}: {error}");
            assert!(error.to_string().contains(words), "{text}: {error}");
            assert!(error.to_string().contains("model \"e\""), "{text}: {error}");
        }
    }

    #[test]
    fn an_embedding_model_may_not_be_the_default_nor_of_an_unknown_kind() {
        let error = refusal(
            "{\"default\": \"e\",\n \"models\": [\n {\"id\": \"c\", \"flat\": 1},\n {\"id\": \"e\", \"kind\": \"embedding\", \"price_per_1000\": {\"input\": 1}}]}",
        );
        assert_eq!(error.line, 1, "{error}");
        assert!(
            error.to_string().contains("must be a chat model"),
            "{error}"
        );
        let error = refusal(
            "{\"default\": \"c\",\n \"models\": [\n {\"id\": \"c\", \"kind\": \"vision\", \"flat\": 1}]}",
        );
        assert_eq!(error.line, 3, "{error}");
        assert!(
            error.to_string().contains("unknown variant `vision`"),
            "{error}"
        );
    }

    #[test]
    fn a_chat_model_still_needs_its_output_price() {
        let error = refusal(
            "{\"default\": \"c\",\n \"models\": [\n {\"id\": \"c\", \"price_per_1000\": {\"input\": 1}}]}",
        );
        assert_eq!(error.line, 3, "{error}");
        assert!(
            error
                .to_string()
                .contains("price_per_1000.output is missing"),
            "{error}"
        );
        assert!(accepts(r#""kind": "chat", "flat": 1"#));
    }

    #[test]
    fn a_function_finds_the_catalog_in_its_process_environment() {
        // No other test of this crate reads these two variables.
        std::env::remove_var("CATALOG_FILE");
        std::env::set_var("CATALOG", EXAMPLE);
        let found = Catalog::from_env();
        std::env::remove_var("CATALOG");
        assert_eq!(found, Ok(Some(Catalog::parse(EXAMPLE).unwrap())));
    }
}
