//! What a response is documented for.

use std::fmt;

/// What the spec documents a response for: one operation, or the requests
/// no operation matches (the root extensions `x-fallback`, and
/// `x-openai-fallback` for those under `/v1/`), or a browser's CORS
/// preflight under `/v1/` (`x-openai-cors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target<'a> {
    Operation { method: &'a str, path: &'a str },
    Fallback,
    OpenAiFallback,
    OpenAiPreflight,
}

impl Target<'_> {
    /// Whether this target answers in OpenAI's error shape: the `/v1/`
    /// routes and the requests under `/v1/` no operation matches.
    pub fn is_openai(&self) -> bool {
        match self {
            Target::Operation { path, .. } => chat_core::routes::is_openai(path),
            Target::Fallback => false,
            Target::OpenAiFallback | Target::OpenAiPreflight => true,
        }
    }

    /// The target a `Display` string names: the inverse of `to_string`.
    pub fn parse(text: &str) -> Target<'_> {
        match text {
            "x-fallback" => Target::Fallback,
            "x-openai-fallback" => Target::OpenAiFallback,
            "x-openai-cors" => Target::OpenAiPreflight,
            _ => {
                let (method, path) = text
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("not a target: {text}"));
                Target::Operation { method, path }
            }
        }
    }
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Operation { method, path } => write!(f, "{method} {path}"),
            Target::Fallback => f.write_str("x-fallback"),
            Target::OpenAiFallback => f.write_str("x-openai-fallback"),
            Target::OpenAiPreflight => f.write_str("x-openai-cors"),
        }
    }
}
