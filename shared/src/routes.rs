//! The API's routes: one place that the fallback function, the local router
//! and the tests all agree with.

use std::borrow::Cow;

/// (method, path as clients call it, function that serves it). A `{name}`
/// segment stands for any one segment.
pub const ROUTES: [(&str, &str, &str); 12] = [
    ("POST", "/register/", "register"),
    ("POST", "/login/", "login"),
    ("POST", "/chat/", "chat"),
    ("GET", "/balance/", "balance"),
    ("PATCH", "/balance/", "balance"),
    ("POST", "/logout/", "logout"),
    ("GET", "/chats/", "history"),
    ("POST", "/keys/", "keys"),
    ("GET", "/keys/", "keys"),
    ("PATCH", "/keys/{id}", "keys"),
    ("DELETE", "/keys/{id}", "keys"),
    ("GET", "/usage/", "usage"),
];

/// The OpenAI-compatible routes, served by a REST API whose answers can
/// stream (see `template.yaml`), at OpenAI's paths.
pub const OPENAI_ROUTES: [(&str, &str, &str); 4] = [
    ("POST", "/v1/chat/completions", "completions"),
    ("POST", "/v1/responses", "responses"),
    ("GET", "/v1/models", "models"),
    ("POST", "/v1/embeddings", "embeddings"),
];

/// The web page (functions/web): the page, and its files under hashed
/// names. Not part of the JSON contract: they answer HTML, CSS and
/// JavaScript, and a wrong method reaches the fallback's 404 in AWS.
pub const WEB_ROUTES: [(&str, &str, &str); 2] =
    [("GET", "/", "web"), ("GET", "/assets/{file}", "web")];

/// The methods a path is served on (`GET, POST`), if it is one of ours:
/// what a 405's `Allow` lists. The slash-less spelling counts too: API
/// Gateway routes `/chat` and `/chat/` alike.
pub fn method_for(path: &str) -> Option<Cow<'static, str>> {
    let mut methods = routes_for(path).map(|(method, _, _)| *method);
    let first = methods.next()?;
    Some(methods.fold(Cow::Borrowed(first), |all, method| {
        Cow::Owned(format!("{all}, {method}"))
    }))
}

/// The route a request is, if it is one of ours: (method, route, function).
pub fn route_for(
    method: &str,
    path: &str,
) -> Option<&'static (&'static str, &'static str, &'static str)> {
    routes_for(path).find(|(served, _, _)| *served == method)
}

fn routes_for(
    path: &str,
) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> + '_ {
    let wanted = path.trim_end_matches('/');
    ROUTES
        .iter()
        .chain(OPENAI_ROUTES.iter())
        .filter(move |(_, route, _)| matches(route.trim_end_matches('/'), wanted))
}

/// Whether `path` is `route`, where a `{name}` segment stands for any one
/// non-empty segment.
fn matches(route: &str, path: &str) -> bool {
    let mut route = route.split('/');
    let mut path = path.split('/');
    loop {
        match (route.next(), path.next()) {
            (None, None) => return true,
            (Some(r), Some(p)) if r.starts_with('{') && !p.is_empty() => {}
            (Some(r), Some(p)) if r == p => {}
            _ => return false,
        }
    }
}

/// Whether a path is on the OpenAI-compatible side, whose errors take
/// OpenAI's shape.
pub fn is_openai(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_are_found_with_or_without_the_trailing_slash() {
        let method = |path| method_for(path).map(Cow::into_owned);
        assert_eq!(method("/chat/").as_deref(), Some("POST"));
        assert_eq!(method("/balance").as_deref(), Some("GET, PATCH"));
        assert_eq!(method("/chats").as_deref(), Some("GET"));
        assert_eq!(method("/chat/history"), None);
        assert_eq!(method("/"), None);
        assert_eq!(method("/v1/chat/completions").as_deref(), Some("POST"));
        assert_eq!(method("/v1/models/dummy"), None);
        assert_eq!(method("/v1/models/").as_deref(), Some("GET"));
        assert_eq!(method("/keys/").as_deref(), Some("POST, GET"));
        assert_eq!(method("/keys/abc").as_deref(), Some("PATCH, DELETE"));
        assert_eq!(method("/keys/a/b"), None);
        assert_eq!(method("/usage").as_deref(), Some("GET"));
        assert!(route_for("DELETE", "/keys/abc").is_some());
        assert!(route_for("PATCH", "/keys/abc").is_some());
        assert!(route_for("GET", "/keys/abc").is_none());
    }
}
