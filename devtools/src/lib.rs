//! Development tools for this workspace. Nothing here is deployed, and no
//! function crate depends on it: the production crate holds only what runs
//! in Lambda.
//!
//! - [`dynamodb_local`]: DynamoDB Local for the tests and `make run`, and
//!   clients and apps on tables of their own;
//! - [`tables`]: the tables' key schemas and their creation (the
//!   `create-tables` binary);
//! - [`settings`]: settings written out in code, for configuration tests;
//! - [`routes`]: `make run`'s router, written from the one list of routes
//!   (the `routes` binary, `make routes`);
//! - [`streams`]: the users table's stream, read for the alerts (the
//!   `alerts-local` binary and the tests);
//! - [`serve`] is `local-gateway`, the HTTP front of `make run`.
//!
//! `make run` serves the functions through `cargo lambda watch`, whose
//! emulator turns each HTTP request into an API Gateway (HTTP API, payload
//! 2.0) event. cargo-lambda 1.9.2 cannot build that event for two kinds of
//! request that API Gateway does pass on to a function, and answers them
//! with its own `500 text/plain` before any function runs:
//!
//! - a body that is not UTF-8 under what it takes for a text content type
//!   (none at all, `text/*`, `application/json...`): it reads such a body
//!   as a `String`, and only other content types are passed on as binary
//!   (base64) bodies;
//! - a header value that is not UTF-8: the event's headers are JSON strings.
//!
//! The gateway repairs exactly those two, the way API Gateway presents them
//! to a function: such a body becomes a binary body (its content type is
//! sent as `application/octet-stream`, the one way to make the emulator
//! base64-encode it; the bytes are untouched), and such a header value
//! becomes Latin-1 text, each byte one character, so the function's own
//! header parsing refuses it with our JSON 4xx. Everything else passes as it
//! came, and response bodies are streamed through as they arrive.
//!
//! Until `make run` has started every function (the emulator starts each on
//! its first request, and answers its own 500 to some while it does), the
//! gateway answers 503 with `Retry-After: 1`: a script that waits for the
//! API waits for an answer other than 503, and never sees the emulator's
//! start-up. `make run` says so by creating the ready file it names.

pub mod dynamodb_local;
pub mod routes;
pub mod settings;
pub mod streams;
pub mod tables;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A body passed through as a stream, or one the gateway had to read whole.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Serves `listener` for ever, forwarding every request to `upstream`;
/// with a `ready_file`, only once that file exists (503 before).
pub async fn serve(listener: TcpListener, upstream: SocketAddr, ready_file: Option<PathBuf>) {
    serve_waiting(listener, upstream, ready_file, EMULATOR_ANSWER_WAIT).await;
}

/// [`serve`], sending a repeatable request again after `answer_wait`
/// without an answer (the tests wait less than `make run` does).
async fn serve_waiting(
    listener: TcpListener,
    upstream: SocketAddr,
    ready_file: Option<PathBuf>,
    answer_wait: Duration,
) {
    let gateway = Arc::new(Gateway {
        ready: AtomicBool::new(ready_file.is_none()),
        ready_file,
        client: Client::builder(TokioExecutor::new()).build_http(),
        upstream,
        answer_wait,
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                eprintln!("[local-gateway] accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gateway = Arc::clone(&gateway);
                async move { Ok::<_, Infallible>(gateway.forward(request).await) }
            });
            // An error here is the client's connection ending or sending
            // something that is not HTTP (hyper answers that itself).
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

struct Gateway {
    client: Client<HttpConnector, Body>,
    upstream: SocketAddr,
    /// Every function has started: set once, never unset.
    ready: AtomicBool,
    ready_file: Option<PathBuf>,
    /// How long a repeatable request waits for the head of an answer
    /// before it is sent again ([`EMULATOR_ANSWER_WAIT`]).
    answer_wait: Duration,
}

impl Gateway {
    /// Whether `make run` has said every function started; a look at the
    /// file per request until it has (a `stat`, only during start-up).
    fn is_ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let ready = self.ready_file.as_ref().is_some_and(|file| file.exists());
        if ready {
            self.ready.store(true, Ordering::Relaxed);
        }
        ready
    }

    async fn forward(&self, request: Request<Incoming>) -> Response<Body> {
        if !self.is_ready() {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the local API is starting; retry after a second",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        let (mut parts, body) = request.into_parts();
        repair_headers(&mut parts.headers);
        let body = if emulator_reads_as_text(&parts.headers) {
            // Only a body the emulator would read as text is read here, to
            // see whether it is UTF-8; the emulator reads it whole anyway.
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_json",
                        "the request body could not be read",
                    )
                }
            };
            if std::str::from_utf8(&bytes).is_err() {
                parts.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
            }
            Either::Right(Full::new(bytes))
        } else {
            Either::Left(body)
        };
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match Uri::try_from(format!("http://{}{target}", self.upstream)) {
            Ok(uri) => uri,
            Err(_) => return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        };
        // The emulator speaks HTTP/1.1; the client's own version stays
        // between the client and this gateway.
        parts.version = Version::HTTP_11;
        let keyed = is_keyed_route(&parts.method, parts.uri.path());
        let key_added = keyed && !parts.headers.contains_key(IDEMPOTENCY_KEY);
        if key_added {
            let key = format!("local-gateway-{}", uuid::Uuid::new_v4());
            let key = HeaderValue::from_str(&key).expect("a UUID is a valid header value");
            parts.headers.insert(IDEMPOTENCY_KEY, key);
        }
        let repeatable = is_read_only(&parts.method) || keyed;
        if let (true, Either::Right(full)) = (repeatable, &body) {
            let bytes = full.clone();
            for _ in 1..EMULATOR_TRIES {
                let again = Request::from_parts(clone_parts(&parts), Either::Right(bytes.clone()));
                let Ok(answer) =
                    tokio::time::timeout(self.answer_wait, self.client.request(again)).await
                else {
                    eprintln!(
                        "[local-gateway] cargo lambda watch gave no answer to {} {} in {} s; sending it again",
                        parts.method,
                        parts.uri.path(),
                        self.answer_wait.as_secs_f32()
                    );
                    continue;
                };
                match answer {
                    Ok(response) if response.status() == StatusCode::INTERNAL_SERVER_ERROR => {
                        let (head, body) = response.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        if !bytes.starts_with(EMULATOR_500) {
                            let mut response =
                                Response::from_parts(head, Either::Right(Full::new(bytes)));
                            response.headers_mut().remove(RESPONSE_MODE);
                            return response;
                        }
                        eprintln!("[local-gateway] cargo lambda watch answered its own 500 to {} {}; sending it again", parts.method, parts.uri.path());
                    }
                    other => return self.answer(other, key_added),
                }
            }
        }
        let last = self.client.request(Request::from_parts(parts, body));
        if !repeatable {
            return self.answer(last.await, key_added);
        }
        match tokio::time::timeout(self.answer_wait, last).await {
            Ok(answer) => self.answer(answer, key_added),
            Err(_) => {
                eprintln!(
                    "[local-gateway] cargo lambda watch gave no answer to the last of {EMULATOR_TRIES} tries"
                );
                unavailable()
            }
        }
    }

    /// The emulator's answer as the client gets it; with `key_added`, the
    /// mark of a replay of the key the gateway added is not shown.
    fn answer(
        &self,
        answer: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
        key_added: bool,
    ) -> Response<Body> {
        match answer {
            Ok(mut response) => {
                // How the function answered the emulator, not part of any
                // answer API Gateway gives a client.
                response.headers_mut().remove(RESPONSE_MODE);
                if key_added {
                    response
                        .headers_mut()
                        .remove(chat_core::http::IDEMPOTENT_REPLAYED);
                }
                response.map(Either::Left)
            }
            Err(cause) => {
                eprintln!("[local-gateway] cargo lambda watch did not answer: {cause}");
                unavailable()
            }
        }
    }
}

/// Our JSON 503 for an emulator that does not answer.
fn unavailable() -> Response<Body> {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the local API is not answering; retry later",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// cargo-lambda 1.9.2's own 500 (as `text/plain`), given now and then
/// instead of a function's answer: its Runtime API acknowledges a
/// function's posted answer before it has read the whole body, so a large
/// answer (a web page's file, 32 embeddings of 1024 numbers) is now and
/// then cut off and the emulator answers its own 500 (about 1 in 100 at
/// 600 KB). API Gateway has no such failure to show a client, so the
/// gateway sends the request again, up to this many times in all, when
/// that changes nothing: a GET or HEAD, or a POST under an idempotency
/// key, which the function answers again with its first answer (replayed,
/// never charged twice).
const EMULATOR_500: &[u8] = br#"{"type":"https://httpstatuses.com/500""#;
const EMULATOR_TRIES: usize = 4;

/// The same emulator now and then loses a function's answer altogether:
/// the function has answered (its metrics line is in the log), and the
/// request waits for ever (about 1 in 750 embeddings answers of 40 KB). A
/// request that may be sent again (as above) is sent again after this long
/// without the head of an answer: a streamed answer's head comes as the
/// stream starts, and the local models answer in milliseconds. A whole
/// answer slower than this (a real Bedrock model's long reply, not
/// streamed) finds its first try still at work and gets that route's 409
/// `idempotency_key_in_progress`, as a client sending it again would.
const EMULATOR_ANSWER_WAIT: Duration = Duration::from_secs(20);

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The routes that honour `Idempotency-Key` (docs/api.md): a POST to one
/// without a key gets one from the gateway (`local-gateway-<uuid>`), so
/// that it can be sent again as above; the client's own key, if it sent
/// one, is kept. The `Idempotent-Replayed` mark of a replay under a key
/// the gateway added is not shown to the client, which sent none.
const KEYED_ROUTES: [&str; 4] = [
    "/chat",
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/embeddings",
];

fn is_keyed_route(method: &hyper::Method, path: &str) -> bool {
    *method == hyper::Method::POST && KEYED_ROUTES.contains(&path.trim_end_matches('/'))
}

fn is_read_only(method: &hyper::Method) -> bool {
    *method == hyper::Method::GET || *method == hyper::Method::HEAD
}

/// The same request head again (`Parts` is not `Clone`; extensions are
/// hyper's own and not sent).
fn clone_parts(parts: &hyper::http::request::Parts) -> hyper::http::request::Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

/// The Runtime API header a streaming function answers with, which
/// cargo-lambda passes on to the client.
const RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";

/// Whether cargo-lambda 1.9.2 reads this request's body as a UTF-8 string
/// (and fails on one that is not), rather than passing it base64-encoded.
/// Its own rule, kept exactly: byte-wise prefixes, case-sensitive.
pub fn emulator_reads_as_text(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE) {
        None => true,
        Some(value) => value.to_str().is_ok_and(|content_type| {
            content_type.starts_with("text/") || content_type.starts_with("application/json")
        }),
    }
}

/// Turns each header value that is not UTF-8 into the same bytes read as
/// Latin-1 (ISO-8859-1), as text: `0xE9` becomes `é`, sent as UTF-8. Valid
/// UTF-8 values, ASCII included, are left exactly as they are.
pub fn repair_headers(headers: &mut HeaderMap) {
    for value in headers.values_mut() {
        if std::str::from_utf8(value.as_bytes()).is_ok() {
            continue;
        }
        let latin1: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        // The original passed hyper's checks (no control characters), and
        // UTF-8 encodes every character from U+0080 up with bytes >= 0x80,
        // which header values allow: this cannot fail.
        let mut repaired =
            HeaderValue::from_bytes(latin1.as_bytes()).expect("Latin-1 text is a valid value");
        repaired.set_sensitive(value.is_sensitive());
        *value = repaired;
    }
}

/// Our error format, for the few answers the gateway gives itself.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    // Neither string holds anything JSON must escape.
    let body = format!(r#"{{"error":"{code}","message":"{message}"}}"#);
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::{mpsc, oneshot};

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn non_utf8_header_values_become_latin1_text_and_the_rest_stay() {
        let mut map = headers(&[
            ("authorization", b"Token \xff\xfe"),
            ("x-ascii", b"plain value"),
            ("x-utf8", "caf\u{e9}".as_bytes()),
            ("x-latin1", b"caf\xe9"),
        ]);
        repair_headers(&mut map);
        assert_eq!(
            map["authorization"].as_bytes(),
            "Token \u{ff}\u{fe}".as_bytes()
        );
        assert_eq!(map["x-ascii"].as_bytes(), b"plain value");
        assert_eq!(map["x-utf8"].as_bytes(), "caf\u{e9}".as_bytes());
        assert_eq!(map["x-latin1"].as_bytes(), "caf\u{e9}".as_bytes());
    }

    #[test]
    fn the_emulators_text_rule_is_kept_exactly() {
        for (content_type, text) in [
            (None, true),
            (Some("application/json"), true),
            (Some("application/json; charset=utf-8"), true),
            (Some("text/plain"), true),
            (Some("application/octet-stream"), false),
            (Some("Application/JSON"), false),
            (Some("application/x-www-form-urlencoded"), false),
        ] {
            let map = match content_type {
                None => HeaderMap::new(),
                Some(value) => headers(&[("content-type", value.as_bytes())]),
            };
            assert_eq!(emulator_reads_as_text(&map), text, "{content_type:?}");
        }
    }

    /// A stand-in upstream: hands each raw request it reads (head and body,
    /// as far as Content-Length says) to the test, then answers with
    /// `response_head` and, once told to, with `response_rest`.
    async fn upstream(
        response_head: &'static [u8],
        response_rest: &'static [u8],
    ) -> (SocketAddr, mpsc::Receiver<Vec<u8>>, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (seen_tx, seen_rx) = mpsc::channel(4);
        let (go_tx, go_rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let raw = read_request(&mut stream).await;
            seen_tx.send(raw).await.unwrap();
            stream.write_all(response_head).await.unwrap();
            let _ = go_rx.await;
            stream.write_all(response_rest).await.unwrap();
        });
        (address, seen_rx, go_tx)
    }

    /// A whole request, head and body, as far as its Content-Length says.
    async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
        let mut raw = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the connection closed mid-request");
            raw.extend_from_slice(&buffer[..n]);
            // No whole head yet (or not all the body): read more.
            if let Some((_, body)) = parts(&raw) {
                let length = head_line(&raw, "content-length")
                    .map_or(0, |n| std::str::from_utf8(n).unwrap().parse().unwrap());
                if body.len() >= length {
                    return raw;
                }
            }
        }
    }

    async fn gateway_to(upstream: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, upstream, None));
        address
    }

    #[tokio::test]
    async fn until_the_ready_file_exists_every_request_is_a_503_to_retry() {
        let (upstream, mut seen, go) = upstream(OK_EMPTY, b"").await;
        let dir = std::env::temp_dir().join(format!("gateway-ready-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ready = dir.join("ready");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, upstream, Some(ready.clone())));
        let request = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        for _ in 0..2 {
            let answer = exchange(gateway, request).await;
            assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
            assert_eq!(head_line(&answer, "retry-after"), Some(&b"1"[..]));
            assert!(body_of(&answer).starts_with(br#"{"error":"unavailable""#));
        }
        assert!(seen.try_recv().is_err(), "nothing reached the emulator");
        std::fs::write(&ready, b"").unwrap();
        drop(go);
        let answer = exchange(gateway, request).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        assert!(seen.recv().await.unwrap().starts_with(b"GET /v1/models"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    const OK_EMPTY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

    async fn exchange(gateway: SocketAddr, request: &[u8]) -> Vec<u8> {
        let mut client = TcpStream::connect(gateway).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        answer
    }

    /// The headers and body of a raw request or response, or `None` while
    /// its head is not all there.
    fn parts(raw: &[u8]) -> Option<(Vec<httparse::Header<'_>>, &[u8])> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let (parsed, headers) = if raw.starts_with(b"HTTP/") {
            let mut response = httparse::Response::new(&mut headers);
            (response.parse(raw), response.headers)
        } else {
            let mut request = httparse::Request::new(&mut headers);
            (request.parse(raw), request.headers)
        };
        match parsed.expect("an HTTP/1.1 head") {
            httparse::Status::Complete(end) => Some((headers.to_vec(), &raw[end..])),
            httparse::Status::Partial => None,
        }
    }

    fn head_line<'a>(raw: &'a [u8], name: &str) -> Option<&'a [u8]> {
        let (headers, _) = parts(raw).expect("a whole head");
        headers
            .into_iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    fn body_of(raw: &[u8]) -> &[u8] {
        parts(raw).expect("a whole head").1
    }

    #[tokio::test]
    async fn a_valid_request_reaches_the_emulator_as_it_was_sent() {
        let (upstream, mut seen, go) = upstream(OK_EMPTY, b"").await;
        let gateway = gateway_to(upstream).await;
        let body = "{\"message\": \"h\u{e9}llo\"}";
        let request = format!(
            "POST /chat/?limit=5&cursor=a%2Fb HTTP/1.1\r\nHost: example\r\n\
             Content-Type: application/json\r\nAuthorization: Token abc.def\r\n\
             X-Utf8: caf\u{e9}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        drop(go);
        let answer = exchange(gateway, request.as_bytes()).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let raw = seen.recv().await.unwrap();
        assert!(raw.starts_with(b"POST /chat/?limit=5&cursor=a%2Fb HTTP/1.1\r\n"));
        for (name, value) in [
            ("host", "example"),
            ("content-type", "application/json"),
            ("authorization", "Token abc.def"),
            ("x-utf8", "caf\u{e9}"),
        ] {
            assert_eq!(head_line(&raw, name), Some(value.as_bytes()), "{name}");
        }
        assert_eq!(body_of(&raw), body.as_bytes());
    }

    #[tokio::test]
    async fn a_non_utf8_json_body_and_header_are_presented_as_api_gateway_does() {
        let (upstream, mut seen, go) = upstream(OK_EMPTY, b"").await;
        let gateway = gateway_to(upstream).await;
        let body: &[u8] = b"{\"username\": \"a\xff\xfe\"}";
        let mut request = format!(
            "POST /register/ HTTP/1.1\r\nHost: example\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\nIdempotency-Key: ",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(b"k\xe9y\r\n\r\n");
        request.extend_from_slice(body);
        drop(go);
        exchange(gateway, &request).await;
        let raw = seen.recv().await.unwrap();
        assert_eq!(
            head_line(&raw, "content-type"),
            Some(&b"application/octet-stream"[..])
        );
        assert_eq!(
            head_line(&raw, "idempotency-key"),
            Some("k\u{e9}y".as_bytes())
        );
        assert_eq!(body_of(&raw), body, "the body's bytes are untouched");
    }

    #[tokio::test]
    async fn response_bodies_are_streamed_not_buffered() {
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n";
        let (upstream, _seen, go) = upstream(head, b"6\r\nsecond\r\n0\r\n\r\n").await;
        let gateway = gateway_to(upstream).await;
        let mut client = TcpStream::connect(gateway).await.unwrap();
        client
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // The upstream holds back the rest until told: a gateway that
        // buffered the body would show nothing of it before then.
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        tokio::time::timeout(Duration::from_secs(10), async {
            while !answer.windows(5).any(|w| w == b"first") {
                let n = client.read(&mut buffer).await.unwrap();
                assert!(n > 0, "closed before the first chunk");
                answer.extend_from_slice(&buffer[..n]);
            }
        })
        .await
        .expect("the first chunk did not arrive before the body was complete");
        assert!(!answer.windows(6).any(|w| w == b"second"));
        go.send(()).unwrap();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.windows(6).any(|w| w == b"second"), "{answer:?}");
    }

    #[tokio::test]
    async fn an_emulator_that_does_not_answer_gets_our_json_503() {
        // A port nothing listens on: bound, then closed.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let gateway = gateway_to(closed).await;
        let answer = exchange(
            gateway,
            b"GET /balance/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
        assert_eq!(head_line(&answer, "retry-after"), Some(&b"1"[..]));
        assert_eq!(
            body_of(&answer),
            br#"{"error":"unavailable","message":"the local API is not answering; retry later"}"#
        );
    }

    #[tokio::test]
    async fn a_keyed_post_the_emulator_never_answers_is_sent_again_under_one_key() {
        // The emulator reads the first request and answers nothing, as
        // cargo lambda watch now and then loses an answer; the second gets
        // its 200 (a replay, as the function's would be).
        let (emulator, mut seen) = recording_emulator(1, Failure::Silence).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = listener.local_addr().unwrap();
        tokio::spawn(serve_waiting(
            listener,
            emulator,
            None,
            Duration::from_millis(300),
        ));
        let post = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let answer = tokio::time::timeout(Duration::from_secs(10), exchange(gateway, post))
            .await
            .expect("an answer, not a wait for ever");
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        assert_eq!(head_line(&answer, "idempotent-replayed"), None);
        let (first, second) = (seen.recv().await.unwrap(), seen.recv().await.unwrap());
        let key = head_line(&first, "idempotency-key")
            .expect("a key added")
            .to_vec();
        assert_eq!(head_line(&second, "idempotency-key"), Some(&key[..]));
        assert_eq!(body_of(&second), b"{}");
    }

    /// An emulator that answers its own 500 to the first `failures`
    /// requests and 200 `ok` after, on any number of connections.
    async fn flaky_emulator(failures: usize) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    // One GET per read is enough for these heads.
                    while stream.read(&mut buffer).await.unwrap_or(0) > 0 {
                        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body: &[u8] = if n < failures {
                            br#"{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}"#
                        } else {
                            b"ok"
                        };
                        let status = if n < failures {
                            "500 Internal Server Error"
                        } else {
                            "200 OK"
                        };
                        let head = format!("HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\r\n", body.len());
                        stream.write_all(head.as_bytes()).await.unwrap();
                        stream.write_all(body).await.unwrap();
                    }
                });
            }
        });
        (address, count)
    }

    #[tokio::test]
    async fn a_get_the_emulator_failed_itself_is_sent_again_and_a_post_is_not() {
        let (emulator, count) = flaky_emulator(2).await;
        let gateway = gateway_to(emulator).await;
        let get = b"GET /assets/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let answer = exchange(gateway, get).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        assert_eq!(body_of(&answer), b"ok");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);

        let (emulator, count) = flaky_emulator(1).await;
        let gateway = gateway_to(emulator).await;
        let post =
            b"POST /register/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let answer = exchange(gateway, post).await;
        assert!(answer.starts_with(b"HTTP/1.1 500"), "{answer:?}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_keyed_post_the_emulator_failed_itself_is_sent_again_under_one_key() {
        let (emulator, mut seen) = recording_emulator(1, Failure::Own500).await;
        let gateway = gateway_to(emulator).await;
        // Without a key: the gateway adds one, the same on both tries, and
        // does not show the replay mark of a key the client never sent.
        let post = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let answer = exchange(gateway, post).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        assert_eq!(head_line(&answer, "idempotent-replayed"), None);
        let (first, second) = (seen.recv().await.unwrap(), seen.recv().await.unwrap());
        let key = head_line(&first, "idempotency-key")
            .expect("a key added")
            .to_vec();
        assert!(key.starts_with(b"local-gateway-"), "{key:?}");
        assert_eq!(head_line(&second, "idempotency-key"), Some(&key[..]));
        assert_eq!(body_of(&second), b"{}");

        // With the client's own key: kept, and the replay mark shown.
        let (emulator, mut seen) = recording_emulator(1, Failure::Own500).await;
        let gateway = gateway_to(emulator).await;
        let post = b"POST /chat/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: mine\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        let answer = exchange(gateway, post).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        assert_eq!(
            head_line(&answer, "idempotent-replayed"),
            Some(&b"true"[..])
        );
        for _ in 0..2 {
            let request = seen.recv().await.unwrap();
            assert_eq!(head_line(&request, "idempotency-key"), Some(&b"mine"[..]));
        }
    }

    /// How [`recording_emulator`] fails a request.
    #[derive(Clone, Copy)]
    enum Failure {
        /// cargo lambda watch's own 500.
        Own500,
        /// No answer at all, the connection held open.
        Silence,
    }

    /// An emulator that fails the first `failures` requests as `failure`
    /// says, and after them answers 200 with `Idempotent-Replayed: true`
    /// (as a function replaying a keyed answer does); it hands every whole
    /// request it reads to the test.
    async fn recording_emulator(
        failures: usize,
        failure: Failure,
    ) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (seen_tx, seen_rx) = mpsc::channel(8);
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (seen_tx, count) = (seen_tx.clone(), Arc::clone(&count));
                tokio::spawn(async move {
                    let raw = read_request(&mut stream).await;
                    seen_tx.send(raw).await.unwrap();
                    let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let answer: &[u8] = match failure {
                        _ if n >= failures => {
                            b"HTTP/1.1 200 OK\r\nidempotent-replayed: true\r\ncontent-length: 2\r\n\r\nok"
                        }
                        Failure::Own500 => {
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 39\r\n\r\n{\"type\":\"https://httpstatuses.com/500\"}"
                        }
                        Failure::Silence => return std::future::pending().await,
                    };
                    stream.write_all(answer).await.unwrap();
                });
            }
        });
        (address, seen_rx)
    }
}
