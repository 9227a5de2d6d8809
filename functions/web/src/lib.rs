//! The web page: `GET /` is the page, `GET /assets/{file}` its scripts and
//! style under content-hashed names. It touches no table and holds no
//! secret; the page speaks to the API from the browser with the user's own
//! token, as any other client does.

mod headers;
mod site;

pub use site::{Asset, Site};

use chat_core::http::respond;
use chat_core::ApiError;
use lambda_http::http::Method;
use lambda_http::{Body, Error, Request, Response};

/// Where the hashed files are served: one segment below it, as API
/// Gateway's `/assets/{file}` route matches.
pub const ASSETS: &str = "/assets/";

pub async fn handle(site: &Site, request: Request) -> Result<Response<Body>, Error> {
    respond(answer(site, &request))
}

fn answer(site: &Site, request: &Request) -> Result<Response<Body>, ApiError> {
    // HEAD too: a browser or a link checker may ask for the headers alone.
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        return Err(ApiError::MethodNotAllowed {
            allowed: "GET".into(),
        });
    }
    let path = request.uri().path();
    let asset = if path == "/" {
        site.index()
    } else {
        path.strip_prefix(ASSETS)
            .and_then(|name| site.asset(name))
            .ok_or(ApiError::NotFound)?
    };
    Ok(headers::response(site, asset, head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::{header, StatusCode};

    fn get(site: &Site, method: &str, path: &str) -> Response<Body> {
        let request = lambda_http::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::Empty)
            .unwrap();
        respond(answer(site, &request)).unwrap()
    }

    fn header_of(response: &Response<Body>, name: header::HeaderName) -> &str {
        response.headers()[name].to_str().unwrap()
    }

    #[test]
    fn the_page_is_asked_for_every_time_under_a_strict_policy() {
        let site = Site::new("/v1").unwrap();
        let page = get(&site, "GET", "/");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            header_of(&page, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header_of(&page, header::CACHE_CONTROL), "no-cache");
        let csp = header_of(&page, header::CONTENT_SECURITY_POLICY);
        assert!(csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self';"));
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header_of(&page, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }

    #[test]
    fn a_hashed_file_is_kept_for_a_year_and_an_unknown_one_is_404() {
        let site = Site::new("/v1").unwrap();
        let name = site
            .assets()
            .find(|a| a.name.starts_with("app."))
            .unwrap()
            .name
            .clone();
        let script = get(&site, "GET", &format!("/assets/{name}"));
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(
            header_of(&script, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            header_of(&script, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        for path in [
            "/assets/app.js",
            "/assets/app.0000000000.js",
            "/assets/",
            "/index.html",
        ] {
            assert_eq!(
                get(&site, "GET", path).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let head = get(&site, "HEAD", &format!("/assets/{name}"));
        assert_eq!(head.status(), StatusCode::OK);
        assert!(matches!(head.body(), Body::Empty));
    }

    /// What API Gateway's HTTP API sends for `GET /assets/{file}` (payload 2.0).
    const ASSET_EVENT: &str = r#"{
      "version": "2.0", "routeKey": "GET /assets/{file}", "rawPath": "/assets/FILE",
      "rawQueryString": "", "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com"},
      "pathParameters": {"file": "FILE"},
      "requestContext": {"accountId": "123456789012", "apiId": "abc",
        "domainName": "abc.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc",
        "http": {"method": "GET", "path": "/assets/FILE", "protocol": "HTTP/1.1",
          "sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0"},
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadb015", "routeKey": "GET /assets/{file}",
        "stage": "$default", "time": "02/Dec/2026:15:00:00 +0000", "timeEpoch": 1796223600000},
      "isBase64Encoded": false
    }"#;

    #[tokio::test]
    async fn an_api_gateway_event_for_a_hashed_file_gets_it() {
        let site = Site::new("/v1").unwrap();
        let asset = site
            .assets()
            .find(|a| a.name.starts_with("style."))
            .unwrap();
        let event = ASSET_EVENT.replace("FILE", &asset.name);
        let request = lambda_http::request::from_str(&event).unwrap();
        let response = handle(&site, request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
        assert!(matches!(response.body(), Body::Text(css) if *css == asset.body));
    }

    #[test]
    fn another_method_is_405() {
        let site = Site::new("/v1").unwrap();
        let response = get(&site, "POST", "/");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header_of(&response, header::ALLOW), "GET");
    }
}
