//! `chat-ops catalog`: check a catalog before it is served, show the one a
//! function would load, and turn a file into the stack's parameters.
//!
//! In AWS the catalog is the template's `Catalog` parameter, with the
//! Bedrock grants it needs in `CatalogBedrockModelArns`: one stack update
//! changes both, with no rebuild (docs/catalog.md). These commands touch no
//! table, so they need no AWS credentials.

use std::process::ExitCode;

use chat_core::billing::embeddings::input_bound as embedding_input_bound;
use chat_core::catalog::{Catalog, ModelKind, DEFAULT_REPLY_TOKENS};
use chat_core::pricing::Pricing;
use clap::Subcommand;

/// The template's `MaxLength` for `Catalog`: Lambda keeps 4 KB of
/// variables per function, shared with the other settings.
const MAX_PARAMETER_BYTES: usize = 3072;

/// A message of this many bytes, for the "hold" column: what a chat of a
/// short paragraph reserves before the model is called.
const SAMPLE_MESSAGE_BYTES: usize = 1000;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Check FILE as the functions would at a cold start (the line at
    /// fault, if any), and print each model's price and what a chat of it
    /// holds. Exits 1 if it would be refused.
    Check { file: String },
    /// The catalog this environment serves (CATALOG_FILE, else CATALOG, as
    /// the functions read them), as `check` prints it.
    Show,
    /// Check FILE and print it as the stack's parameters, for
    /// `sam deploy --parameter-overrides "$(chat-ops catalog overrides FILE)"`:
    /// `Catalog` compact, and `CatalogBedrockModelArns` granting exactly its
    /// Bedrock models.
    Overrides {
        file: String,
        /// The stack's region, for the models' ARNs.
        #[arg(long, env = "AWS_REGION")]
        region: String,
        /// The stack's partition (aws-cn, aws-us-gov elsewhere).
        #[arg(long, default_value = "aws")]
        partition: String,
        /// A further ARN to grant, e.g. the foundation models an inference
        /// profile routes to in other regions. Repeat as needed.
        #[arg(long = "also-grant")]
        also_grant: Vec<String>,
    },
}

pub fn run(command: CatalogCommand) -> ExitCode {
    match command {
        CatalogCommand::Check { file } => match load(&file) {
            Ok((catalog, _)) => {
                print_table(&catalog);
                ExitCode::SUCCESS
            }
            Err(why) => refuse(&why),
        },
        CatalogCommand::Show => match Catalog::from_env() {
            Ok(Some(catalog)) => {
                print_table(&catalog);
                ExitCode::SUCCESS
            }
            Ok(None) => {
                println!(
                    "no catalog (CATALOG_FILE and CATALOG are unset): one model, from MODEL_ID, PRICING and the prices"
                );
                ExitCode::SUCCESS
            }
            Err(why) => refuse(&why),
        },
        CatalogCommand::Overrides {
            file,
            region,
            partition,
            also_grant,
        } => match load(&file).and_then(|(catalog, text)| {
            overrides(&catalog, &text, &region, &partition, &also_grant)
        }) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(why) => refuse(&why),
        },
    }
}

fn refuse(why: &str) -> ExitCode {
    eprintln!("chat-ops: {why}");
    ExitCode::from(1)
}

/// The catalog in `path`, checked, and its text.
fn load(path: &str) -> Result<(Catalog, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let catalog = Catalog::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    Ok((catalog, text))
}

fn print_table(catalog: &Catalog) {
    println!(
        "catalog {} (default {}), {} model(s)",
        catalog.version,
        catalog.default,
        catalog.models.len()
    );
    println!(
        "{:<24} {:<44} {:<56} {:>9} {:>12}",
        "id", "answered by", "price (balance tokens)", "max reply", "hold, 1 KB"
    );
    for model in &catalog.models {
        let max_reply = model.max_tokens.unwrap_or(DEFAULT_REPLY_TOKENS);
        // An embedding model writes nothing: its hold is its input's
        // bound alone (one input of the sample's size), its price per
        // input token.
        let (answered_by, price, reply, hold) = match model.kind {
            ModelKind::Chat => (
                model
                    .bedrock_model
                    .as_deref()
                    .unwrap_or("the built-in dummy"),
                price_text(&model.pricing),
                max_reply.to_string(),
                model.pricing.hold(SAMPLE_MESSAGE_BYTES, max_reply),
            ),
            ModelKind::Embedding => (
                model
                    .bedrock_model
                    .as_deref()
                    .unwrap_or("the local embedder"),
                match model.pricing {
                    Pricing::Usage(p) => {
                        format!("per 1000 input: {} (embeddings)", p.input_per_1000)
                    }
                    flat => price_text(&flat),
                },
                "-".to_owned(),
                model.pricing.hold(
                    embedding_input_bound(&["x".repeat(SAMPLE_MESSAGE_BYTES)]),
                    0,
                ),
            ),
        };
        println!(
            "{:<24} {:<44} {:<56} {:>9} {:>12}",
            model.id, answered_by, price, reply, hold,
        );
    }
    let chat_without_cap =
        |m: &&chat_core::catalog::CatalogModel| m.kind == ModelKind::Chat && m.max_tokens.is_none();
    if catalog.models.iter().any(|m| chat_without_cap(&m)) {
        println!(
            "(a model without max_tokens replies up to the deployment's ModelMaxTokens, {DEFAULT_REPLY_TOKENS} unless set)"
        );
    }
}

fn price_text(pricing: &Pricing) -> String {
    match pricing {
        Pricing::Flat(cost) => format!("{cost} a chat"),
        Pricing::Usage(p) => format!(
            "per 1000: in {}, out {}, cache read {}, write {}",
            p.input_per_1000, p.output_per_1000, p.cache_read_per_1000, p.cache_write_per_1000
        ),
    }
}

/// `Catalog='…' CatalogBedrockModelArns=…` in the shorthand `sam deploy
/// --parameter-overrides` reads: the document compact (whitespace is not
/// meaning, and the parameter is short), single-quoted with `'` and `\`
/// escaped, which SAM's parser takes back out.
fn overrides(
    catalog: &Catalog,
    text: &str,
    region: &str,
    partition: &str,
    also_grant: &[String],
) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let compact = value.to_string();
    if compact.len() > MAX_PARAMETER_BYTES {
        return Err(format!(
            "the catalog is {} bytes compact; the Catalog parameter takes at most {MAX_PARAMETER_BYTES} (Lambda's 4 KB of variables per function)",
            compact.len()
        ));
    }
    let mut arns: Vec<String> = Vec::new();
    for model in catalog
        .models
        .iter()
        .filter_map(|m| m.bedrock_model.as_deref())
    {
        arns.push(model_arn(model, region, partition));
    }
    arns.extend(also_grant.iter().cloned());
    arns.sort();
    arns.dedup();
    if let Some(bad) = arns.iter().find(|a| a.contains(',') || a.contains(' ')) {
        return Err(format!("{bad:?} is not an ARN"));
    }
    let quoted = compact.replace('\\', "\\\\").replace('\'', "\\'");
    Ok(format!(
        "Catalog='{quoted}' CatalogBedrockModelArns={}",
        arns.join(",")
    ))
}

/// A model id's foundation-model ARN in the stack's region; an ARN (an
/// inference profile, a provisioned model) as it is.
fn model_arn(model: &str, region: &str, partition: &str) -> String {
    if model.starts_with("arn:") {
        model.to_owned()
    } else {
        format!("arn:{partition}:bedrock:{region}::foundation-model/{model}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{
  "default": "dummy",
  "models": [
    {"id": "dummy", "flat": 100},
    {"id": "haiku", "bedrock_model": "anthropic.claude-3-5-haiku-20241022-v1:0",
     "price_per_1000": {"input": 1, "output": 5, "cache_read": 0, "cache_write": 2}},
    {"id": "it's", "bedrock_model": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x",
     "flat": 7}
  ]
}"#;

    #[test]
    fn overrides_grant_exactly_the_catalogs_models_and_quote_the_document() {
        let catalog = Catalog::parse(TEXT).unwrap();
        let line = overrides(&catalog, TEXT, "eu-west-1", "aws", &[]).unwrap();
        assert_eq!(
            line,
            "Catalog='{\"default\":\"dummy\",\"models\":[{\"flat\":100,\"id\":\"dummy\"},\
             {\"bedrock_model\":\"anthropic.claude-3-5-haiku-20241022-v1:0\",\"id\":\"haiku\",\
             \"price_per_1000\":{\"cache_read\":0,\"cache_write\":2,\"input\":1,\"output\":5}},\
             {\"bedrock_model\":\"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x\",\
             \"flat\":7,\"id\":\"it\\'s\"}]}' \
             CatalogBedrockModelArns=arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0,\
             arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x"
        );
    }

    #[test]
    fn the_compact_document_is_the_same_catalog() {
        let catalog = Catalog::parse(TEXT).unwrap();
        let compact = serde_json::from_str::<serde_json::Value>(TEXT)
            .unwrap()
            .to_string();
        let again = Catalog::parse(&compact).unwrap();
        assert_eq!(again.models, catalog.models);
        assert_eq!(again.default, catalog.default);
    }

    #[test]
    fn a_catalog_too_long_for_the_parameter_is_refused() {
        let models: Vec<String> = (0..120)
            .map(|i| format!(r#"{{"id": "model-number-{i}", "flat": 100}}"#))
            .collect();
        let text = format!(
            r#"{{"default": "model-number-0", "models": [{}]}}"#,
            models.join(",")
        );
        let catalog = Catalog::parse(&text).unwrap();
        let why = overrides(&catalog, &text, "us-east-1", "aws", &[]).unwrap_err();
        assert!(why.contains("at most 3072"), "{why}");
    }

    #[test]
    fn extra_grants_are_added_once() {
        let catalog = Catalog::parse(TEXT).unwrap();
        let extra = "arn:aws:bedrock:us-west-2::foundation-model/us.x".to_owned();
        let line = overrides(
            &catalog,
            TEXT,
            "eu-west-1",
            "aws",
            &[extra.clone(), extra.clone()],
        )
        .unwrap();
        assert_eq!(line.matches(&extra).count(), 1);
    }
}
