//! The page's files, embedded at compile time and named by their content
//! at cold start: `app.js` is served as `app.<hash>.js`, so a browser may
//! keep each for a year, and a new deployment's page names new files.
//!
//! The scripts are ES modules that import each other by relative name
//! (`./api.js`), so each file's references to the files before it are
//! rewritten to their hashed names before it is hashed itself: a change
//! to `api.js` changes the name of every module that imports it, and of
//! the page. Hence the order of [`SOURCES`]: what is imported comes first.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// (name in the sources, content type, text), each file after those it
/// names.
const SOURCES: [(&str, &str, &str); 9] = [
    ("style.css", CSS, include_str!("../static/style.css")),
    ("messages.js", JS, include_str!("../static/messages.js")),
    ("ui.js", JS, include_str!("../static/ui.js")),
    ("api.js", JS, include_str!("../static/api.js")),
    ("sse.js", JS, include_str!("../static/sse.js")),
    ("chart.js", JS, include_str!("../static/chart.js")),
    ("chat.js", JS, include_str!("../static/chat.js")),
    ("panels.js", JS, include_str!("../static/panels.js")),
    ("app.js", JS, include_str!("../static/app.js")),
];
const INDEX: &str = include_str!("../static/index.html");

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Hex digits of the SHA-256 kept in a name: 40 bits, where a clash
/// between two versions of one file would only cost a stale cache.
const HASH_DIGITS: usize = 10;

/// Where the page finds `/v1` when the deployment sets nothing: the same
/// origin, as `make run` serves it.
const SAME_ORIGIN_V1: &str = "/v1";

/// One file as it is served.
#[derive(Debug)]
pub struct Asset {
    /// The name it is served under (hashed, except the page's own).
    pub name: String,
    pub content_type: &'static str,
    pub body: String,
    /// Whether its name changes with its content (so it may be cached for
    /// good).
    pub immutable: bool,
}

#[derive(Debug)]
pub struct Site {
    index: Asset,
    assets: HashMap<String, Asset>,
    /// The page's Content-Security-Policy, with the `/v1` origin it may
    /// call.
    pub csp: String,
}

impl Site {
    /// The site for the `/v1` base in `OPENAI_BASE_URL` (the OpenAI REST
    /// API's URL in AWS, where it is another origin), or this origin's `/v1`.
    pub fn from_env() -> Site {
        let base = std::env::var("OPENAI_BASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty());
        Site::new(base.as_deref().unwrap_or(SAME_ORIGIN_V1))
            .unwrap_or_else(|e| panic!("invalid configuration: OPENAI_BASE_URL: {e}"))
    }

    pub fn new(v1_base: &str) -> Result<Site, String> {
        let v1_origin = origin_of(v1_base)?;
        let mut renamed: Vec<(String, String)> = Vec::new();
        let mut assets = HashMap::new();
        for (source, content_type, text) in SOURCES {
            let body = rename(text, &renamed);
            let name = hashed_name(source, &body);
            renamed.push((source.to_owned(), name.clone()));
            let asset = Asset {
                name: name.clone(),
                content_type,
                body,
                immutable: true,
            };
            assets.insert(name, asset);
        }
        // The base is checked to hold no character that could leave the
        // attribute it is written into.
        let body = rename(INDEX, &renamed).replace("{{OPENAI_BASE_URL}}", v1_base);
        let index = Asset {
            name: "index.html".to_owned(),
            content_type: HTML,
            body,
            immutable: false,
        };
        Ok(Site {
            index,
            assets,
            csp: csp(v1_origin.as_deref()),
        })
    }

    pub fn index(&self) -> &Asset {
        &self.index
    }

    /// The file served under this hashed name, if any (an older
    /// deployment's names are not).
    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.get(name)
    }

    /// Every hashed file, for the tests.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values()
    }
}

/// `text` with each reference to an earlier file (`/api.js"` in an import
/// or a `<script src>`) pointing at its hashed name instead.
fn rename(text: &str, renamed: &[(String, String)]) -> String {
    renamed.iter().fold(text.to_owned(), |text, (from, to)| {
        text.replace(&format!("/{from}\""), &format!("/{to}\""))
    })
}

/// `app.js` with content `body` -> `app.<hash>.js`.
fn hashed_name(source: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest
        .iter()
        .flat_map(|byte| [byte >> 4, byte & 0xf])
        .take(HASH_DIGITS)
        .map(|nibble| char::from_digit(u32::from(nibble), 16).unwrap_or('0'))
        .collect();
    match source.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{hex}.{extension}"),
        None => format!("{source}.{hex}"),
    }
}

/// The origin the page must be allowed to connect to for `/v1`: `None`
/// for a path on its own origin, `https://host` for an absolute URL.
fn origin_of(v1_base: &str) -> Result<Option<String>, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._~:/%".contains(c);
    if v1_base.is_empty() || !v1_base.chars().all(plain) {
        return Err(format!(
            "{v1_base:?} is not a URL of letters, digits and -._~:/%"
        ));
    }
    if v1_base.starts_with('/') && !v1_base.starts_with("//") {
        return Ok(None);
    }
    let rest = v1_base
        .strip_prefix("https://")
        .or_else(|| v1_base.strip_prefix("http://"))
        .ok_or_else(|| format!("{v1_base:?} is neither a path nor an http(s) URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{v1_base:?} names no host"));
    }
    let scheme_length = v1_base.len() - rest.len();
    Ok(Some(format!("{}{host}", &v1_base[..scheme_length])))
}

/// Only this origin's files run, and nothing inline: no script or style
/// in the page, no `eval`, no plugin, no frame around it, no form sent
/// anywhere. It may connect to itself and to `/v1`'s origin, nowhere else.
fn csp(v1_origin: Option<&str>) -> String {
    let connect = match v1_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_named_by_its_content() {
        let site = Site::new("/v1").unwrap();
        assert_eq!(site.assets().count(), SOURCES.len());
        for asset in site.assets() {
            let stem = asset.name.split('.').next().unwrap();
            let source = SOURCES
                .iter()
                .find(|(s, _, _)| s.starts_with(stem))
                .unwrap();
            assert_eq!(asset.name, hashed_name(source.0, &asset.body));
        }
    }

    #[test]
    fn the_page_and_the_modules_name_only_hashed_files() {
        let site = Site::new("/v1").unwrap();
        let texts = site.assets().map(|a| &a.body).chain([&site.index().body]);
        for text in texts {
            for (source, _, _) in SOURCES {
                assert!(!text.contains(&format!("/{source}\"")), "{source} unhashed");
            }
        }
        let page = &site.index().body;
        assert!(site
            .assets()
            .any(|a| a.name.starts_with("app.") && page.contains(&a.name)));
        assert!(site
            .assets()
            .any(|a| a.name.starts_with("style.") && page.contains(&a.name)));
    }

    #[test]
    fn a_change_to_an_imported_module_renames_its_importer() {
        let before = rename("import x from \"./api.js\";", &[]);
        let after = rename(
            "import x from \"./api.js\";",
            &[("api.js".into(), "api.0123456789.js".into())],
        );
        assert_ne!(
            hashed_name("app.js", &before),
            hashed_name("app.js", &after)
        );
        assert_eq!(after, "import x from \"./api.0123456789.js\";");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = Site::new("/v1").unwrap().index().body.clone();
        assert!(!page.contains("<script>"), "inline script");
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains("style=\""), "style attribute");
        let handler = page
            .split_whitespace()
            .find(|word| word.starts_with("on") && word.contains('='));
        assert_eq!(handler, None, "an event handler attribute");
        assert!(!page.contains("http"), "no third party");
    }

    #[test]
    fn another_v1_origin_is_the_one_more_place_the_page_may_connect_to() {
        let site = Site::new("https://abc.execute-api.us-east-1.amazonaws.com/v1").unwrap();
        assert!(site
            .csp
            .contains("connect-src 'self' https://abc.execute-api.us-east-1.amazonaws.com;"));
        assert!(site
            .index()
            .body
            .contains("content=\"https://abc.execute-api.us-east-1.amazonaws.com/v1\""));
        assert!(Site::new("/v1")
            .unwrap()
            .csp
            .contains("connect-src 'self';"));
    }

    #[test]
    fn a_v1_base_that_could_leave_its_attribute_is_refused() {
        for bad in [
            "\"><script>",
            "javascript:alert(1)",
            "//evil.example",
            "https:///v1",
            "",
        ] {
            assert!(Site::new(bad).is_err(), "{bad}");
        }
    }
}
