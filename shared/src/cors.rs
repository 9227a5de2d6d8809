//! CORS for the OpenAI-compatible routes, answered by their functions.
//!
//! The HTTP API's CORS is API Gateway's own, and takes a list of origins.
//! The REST API under `/v1` can answer a preflight only from a mock whose
//! headers are fixed, so it could allow one origin of the list: a browser
//! on any other one failed. Here the function answers the preflight itself
//! and names the caller's origin when it is one of `CORS_ALLOW_ORIGINS`
//! (or `*` when every origin is allowed), on the preflight and on every
//! answer, which a browser needs too.

use lambda_http::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::Request;

/// The origins a browser page may call from: every one, or these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    Listed(Vec<String>),
}

/// What browser code may read of an answer, besides the simple headers:
/// the ones our answers carry for a client to act on.
const EXPOSED: &str = "Retry-After, WWW-Authenticate, Allow, x-should-retry, Tokens-Charged";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

impl AllowedOrigins {
    /// `CORS_ALLOW_ORIGINS`: `*`, or origins separated by commas (the
    /// template's `CorsAllowOrigin` list joined); unset is `*`, as the
    /// template's default.
    pub fn parse(raw: Option<&str>) -> Self {
        let listed: Vec<String> = raw
            .unwrap_or("*")
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(str::to_owned)
            .collect();
        if listed.is_empty() || listed.iter().any(|origin| origin == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::Listed(listed)
        }
    }

    /// The value of `Access-Control-Allow-Origin` for a request from
    /// `origin`, if that origin may read the answer.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
            AllowedOrigins::Listed(listed) => {
                let origin = origin?;
                let text = origin.to_str().ok()?;
                listed
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(text))
                    .then(|| origin.clone())
            }
        }
    }

    /// The answer to a CORS preflight (`OPTIONS`), if `request` is one: 204,
    /// naming the origin when it is allowed (a browser refuses the call
    /// otherwise), the route's `method`, and the headers the page asked to
    /// send. Those are allowed whatever they are: a bearer token, not a
    /// cookie, is the credential, and OpenAI's SDKs send headers of their
    /// own (`x-stainless-*`) that change from version to version.
    pub fn preflight(
        &self,
        request: &Request,
        method: &Method,
    ) -> Option<lambda_http::Response<()>> {
        if request.method() != Method::OPTIONS {
            return None;
        }
        let mut response = lambda_http::Response::new(());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        self.vary(headers);
        headers.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        if let Some(allowed) = self.allow(request.headers().get(header::ORIGIN)) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            let methods = format!("{method}, OPTIONS");
            if let Ok(methods) = HeaderValue::from_str(&methods) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
            }
            if let Some(asked) = request
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE),
            );
        }
        Some(response)
    }

    /// Adds to an answer's `headers` what lets a page on an allowed
    /// `origin` read it.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        self.vary(headers);
        if let Some(allowed) = self.allow(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
    }

    /// An answer that depends on the caller's origin says so, so no cache
    /// hands one origin's answer to another.
    fn vary(&self, headers: &mut HeaderMap) {
        if matches!(self, AllowedOrigins::Listed(_)) {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preflight_from(origin: &str) -> Request {
        let mut request = Request::new(lambda_http::Body::Empty);
        *request.method_mut() = Method::OPTIONS;
        request
            .headers_mut()
            .insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        request.headers_mut().insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-stainless-os"),
        );
        request
    }

    #[test]
    fn every_listed_origin_is_named_back_and_no_other() {
        let allowed = AllowedOrigins::parse(Some("https://a.example, https://b.example"));
        for origin in ["https://a.example", "https://b.example"] {
            let answer = allowed
                .preflight(&preflight_from(origin), &Method::POST)
                .unwrap();
            assert_eq!(answer.status(), StatusCode::NO_CONTENT);
            let headers = answer.headers();
            assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], origin);
            assert_eq!(
                headers[header::ACCESS_CONTROL_ALLOW_METHODS],
                "POST, OPTIONS"
            );
            assert_eq!(
                headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
                "authorization, content-type, x-stainless-os"
            );
        }
        let stranger = allowed
            .preflight(&preflight_from("https://evil.example"), &Method::POST)
            .unwrap();
        assert!(stranger
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none());
        let mut headers = HeaderMap::new();
        allowed.decorate(
            Some(&HeaderValue::from_static("https://b.example")),
            &mut headers,
        );
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://b.example"
        );
        assert_eq!(headers[header::VARY], "Origin");
    }

    #[test]
    fn a_star_or_nothing_allows_every_origin() {
        for raw in [None, Some("*"), Some(""), Some("https://a.example,*")] {
            assert_eq!(AllowedOrigins::parse(raw), AllowedOrigins::Any, "{raw:?}");
        }
        let mut headers = HeaderMap::new();
        AllowedOrigins::Any.decorate(None, &mut headers);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(headers.get(header::VARY).is_none());
    }

    #[test]
    fn only_an_options_request_is_a_preflight() {
        let mut request = preflight_from("https://a.example");
        *request.method_mut() = Method::POST;
        assert!(AllowedOrigins::Any
            .preflight(&request, &Method::POST)
            .is_none());
    }
}
