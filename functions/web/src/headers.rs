//! The headers every file goes out with: how long it may be cached, and
//! what the browser may do with it.

use crate::site::{Asset, Site};
use lambda_http::http::{header, HeaderName, HeaderValue, StatusCode};
use lambda_http::{Body, Response};

/// A hashed name never changes content: a year, and no revalidation.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page names the current files, so it is asked for again every time
/// (a 200 of a few KB; an ETag would save little and need state).
const FRESH: &str = "no-cache";

pub fn response(site: &Site, asset: &Asset, head: bool) -> Response<Body> {
    let body = if head {
        Body::Empty
    } else {
        Body::Text(asset.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let cache = if asset.immutable { IMMUTABLE } else { FRESH };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(csp) = HeaderValue::from_str(&site.csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    for (name, value) in [
        // Each file is what its Content-Type says, never sniffed as another.
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // The page's URL goes to no one, not even the API's other origin.
        (header::REFERRER_POLICY, "no-referrer"),
        // No one frames the page to click through it (CSP frame-ancestors
        // says it too, for browsers that read only this).
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    for (name, value) in [
        // No other window keeps a handle on this one.
        ("cross-origin-opener-policy", "same-origin"),
        // The page needs no camera, microphone, location or payment.
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}
