//! The API's routes: one place that the fallback function, the local router
//! and the tests all agree with.

/// (method, path as clients call it, function that serves it).
pub const ROUTES: [(&str, &str, &str); 6] = [
    ("POST", "/register/", "register"),
    ("POST", "/login/", "login"),
    ("POST", "/chat/", "chat"),
    ("GET", "/balance/", "balance"),
    ("POST", "/logout/", "logout"),
    ("GET", "/chats/", "chats"),
];

/// The method a path is served on, if it is one of ours. The slash-less
/// spelling counts too: API Gateway routes `/chat` and `/chat/` alike.
pub fn method_for(path: &str) -> Option<&'static str> {
    let wanted = path.trim_end_matches('/');
    ROUTES
        .iter()
        .find(|(_, route, _)| route.trim_end_matches('/') == wanted)
        .map(|(method, _, _)| *method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_are_found_with_or_without_the_trailing_slash() {
        assert_eq!(method_for("/chat/"), Some("POST"));
        assert_eq!(method_for("/balance"), Some("GET"));
        assert_eq!(method_for("/chats"), Some("GET"));
        assert_eq!(method_for("/chat/history"), None);
        assert_eq!(method_for("/"), None);
    }
}
