//! The local router of `make run`, written from the one list of routes,
//! `chat_core::routes`. `cargo lambda watch` reads its router from the
//! workspace manifest, so `make routes` (the `routes` binary) writes the
//! manifest's `[workspace.metadata.lambda.watch.router]` table from that
//! list, and a test fails while the manifest differs from what it writes.

use chat_core::routes::{OPENAI_ROUTES, ROUTES, WEB_ROUTES};

/// The router table's header in the workspace manifest.
pub const HEADER: &str = "[workspace.metadata.lambda.watch.router]";

/// Each path the local router serves and the function serving it, in the
/// lists' order: the contract's paths with and without the trailing slash
/// (as API Gateway's HTTP API serves them), OpenAI's with and without one,
/// the web page's as they are, and last the catch-all to `fallback`, which
/// answers every other path with a JSON 404 as the `$default` route does.
/// Every method of a path reaches its function, which answers a wrong one
/// with a JSON 405.
pub fn router() -> Vec<(String, &'static str)> {
    let mut entries: Vec<(String, &'static str)> = Vec::new();
    let mut add = |path: String, function: &'static str| {
        if !entries.iter().any(|(seen, _)| *seen == path) {
            entries.push((path, function));
        }
    };
    for (_, path, function) in ROUTES {
        add(path.to_string(), function);
        add(path.trim_end_matches('/').to_string(), function);
    }
    for (_, path, function) in OPENAI_ROUTES {
        add(path.to_string(), function);
        add(format!("{path}/"), function);
    }
    for (_, path, function) in WEB_ROUTES {
        add(path.to_string(), function);
    }
    add("/{*path}".to_owned(), "fallback");
    entries
}

/// The router table as the manifest holds it: the header, a line a path.
pub fn router_table() -> String {
    let mut table = format!("{HEADER}\n");
    for (path, function) in router() {
        table.push_str(&format!("\"{path}\" = \"{function}\"\n"));
    }
    table
}

/// `manifest` with its router table replaced by [`router_table`]: the
/// table runs from its header to the first blank line (or the end), and
/// what comes before and after stays as it is.
pub fn with_router(manifest: &str) -> Result<String, String> {
    let start = manifest
        .find(&format!("\n{HEADER}\n"))
        .map(|at| at + 1)
        .ok_or_else(|| format!("no {HEADER} table in the manifest"))?;
    let end = manifest[start..]
        .find("\n\n")
        .map_or(manifest.len(), |at| start + at + 1);
    Ok(format!(
        "{}{}{}",
        &manifest[..start],
        router_table(),
        &manifest[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_replaced_and_the_rest_kept() {
        let manifest = format!("[workspace]\n# before\n{HEADER}\n\"/old\" = \"gone\"\n\n[profile.release]\nlto = true\n");
        let written = with_router(&manifest).unwrap();
        assert!(written.starts_with("[workspace]\n# before\n"));
        assert!(written.ends_with("\n\n[profile.release]\nlto = true\n"));
        assert!(!written.contains("/old"));
        assert!(written.contains("\"/chat/\" = \"chat\"\n\"/chat\" = \"chat\"\n"));
        assert!(written.contains("\"/{*path}\" = \"fallback\"\n\n[profile"));
        // Written again, nothing changes.
        assert_eq!(with_router(&written).unwrap(), written);
        assert!(with_router("[workspace]\n").is_err());
    }

    #[test]
    fn each_path_once_and_the_catch_all_last() {
        let router = router();
        let mut paths: Vec<&String> = router.iter().map(|(path, _)| path).collect();
        assert_eq!(router.last().unwrap(), &("/{*path}".to_owned(), "fallback"));
        assert!(router.contains(&("/balance".to_owned(), "balance")));
        assert!(router.contains(&("/v1/models/".to_owned(), "models")));
        assert!(router.contains(&("/".to_owned(), "web")));
        let count = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), count);
    }
}
