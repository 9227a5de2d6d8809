//! A minimal HTTP/1.1 client over a loopback socket, enough to drive the
//! local API as curl would, without pulling an HTTP client crate into the
//! build; and the request reader of the stand-in servers (Bedrock's,
//! the Lambda Runtime API's). `httparse` reads the heads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON; panics (failing the test) if it is not JSON.
    pub fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request and reads the whole response (`Connection: close`).
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let headers: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .collect();
    send_raw(port, method, path, &headers, body)
}

/// [`send`] with header values as raw bytes, which need not be UTF-8 (HTTP
/// allows any byte from 0x80 up in a value).
pub fn send_raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the local API");
    // A hang is a failure too: no request may take this long locally.
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: ").as_bytes());
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("reading the response (timed out?)");
    parse(&raw)
}

fn parse(raw: &[u8]) -> HttpResponse {
    // Far more than the API sends; more would fail the parse, and the test.
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    // The whole response is read already: a partial head is a failure.
    let Ok(httparse::Status::Complete(head)) = response.parse(raw) else {
        panic!("no whole head in {:?}", String::from_utf8_lossy(raw));
    };
    let status = response.code.expect("a status line");
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into()))
        .collect();
    let mut body = raw[head..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// The data of a whole chunked body; trailers, if any, are dropped.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Ok(httparse::Status::Complete((start, size))) = httparse::parse_chunk_size(data) else {
            panic!("no chunk size in {:?}", String::from_utf8_lossy(data));
        };
        if size == 0 {
            return out;
        }
        let end = start + usize::try_from(size).expect("a chunk that fits in memory");
        out.extend_from_slice(&data[start..end]);
        // Past the chunk's closing CRLF.
        data = &data[end + 2..];
    }
}

/// Reads the requests of one connection to a stand-in server, keeping what
/// was read past one request for the next (a kept-alive connection).
pub(crate) struct RequestReader<R> {
    stream: R,
    buffer: Vec<u8>,
}

impl<R: Read> RequestReader<R> {
    pub(crate) fn new(stream: R) -> Self {
        RequestReader {
            stream,
            buffer: Vec::new(),
        }
    }

    /// The path and body of the next request, or `None` when the client
    /// closed the connection (or sent what is not HTTP/1.1). A chunked body
    /// (a streamed Lambda response) comes whole, without its framing.
    pub(crate) fn next_request(&mut self) -> Option<(String, Vec<u8>)> {
        let (head, path, length, chunked) = loop {
            // Far more than the SDK and the Lambda runtime send.
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut request = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(head) = request.parse(&self.buffer).ok()? {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| std::str::from_utf8(h.value).unwrap_or_default())
                };
                let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                let length = match header("content-length") {
                    Some(value) => value.parse().ok()?,
                    None => 0,
                };
                break (head, request.path?.to_owned(), length, chunked);
            }
            // Only part of the head so far: read more and parse again.
            self.read_more()?;
        };
        if chunked {
            self.buffer.drain(..head);
            let body = self.chunked_body()?;
            return Some((path, body));
        }
        while self.buffer.len() < head + length {
            self.read_more()?;
        }
        let body = self.buffer[head..head + length].to_vec();
        self.buffer.drain(..head + length);
        Some((path, body))
    }

    /// The data of the chunked body at the start of the buffer, read as it
    /// arrives; its trailers (the runtime's error report, if any) dropped.
    fn chunked_body(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let (start, size) = loop {
                match httparse::parse_chunk_size(&self.buffer).ok()? {
                    httparse::Status::Complete(found) => break found,
                    httparse::Status::Partial => self.read_more()?,
                }
            };
            let size = usize::try_from(size).ok()?;
            if size == 0 {
                self.buffer.drain(..start);
                break;
            }
            // The chunk and its closing CRLF.
            while self.buffer.len() < start + size + 2 {
                self.read_more()?;
            }
            body.extend_from_slice(&self.buffer[start..start + size]);
            self.buffer.drain(..start + size + 2);
        }
        // Trailer lines, each ended by CRLF, up to an empty line.
        loop {
            let end = loop {
                match self.buffer.windows(2).position(|w| w == b"\r\n") {
                    Some(end) => break end,
                    None => self.read_more()?,
                }
            };
            self.buffer.drain(..end + 2);
            if end == 0 {
                return Some(body);
            }
        }
    }

    fn read_more(&mut self) -> Option<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).ok()?;
        self.buffer.extend_from_slice(&chunk[..n]);
        (n > 0).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_response_is_read_whole() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;name=x\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let response = parse(raw);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.body, b"hello world");
    }

    /// Hands out one byte per read, as a slow client might.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buffer.len()).min(1);
            buffer[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn requests_are_read_across_partial_reads_and_kept_alive() {
        let raw = b"POST /model/a%3A1/converse HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}\
                    GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut reader = RequestReader::new(Trickle(raw));
        assert_eq!(
            reader.next_request(),
            Some(("/model/a%3A1/converse".to_owned(), b"{}".to_vec()))
        );
        assert_eq!(
            reader.next_request(),
            Some(("/next".to_owned(), Vec::new()))
        );
        assert_eq!(reader.next_request(), None);
    }

    #[test]
    fn a_chunked_request_is_read_whole_with_its_trailers_dropped() {
        let raw = b"POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\n{}\0\r\n2\r\nok\r\n0\r\nX-Error: none\r\n\r\n\
                    GET /next HTTP/1.1\r\n\r\n";
        let mut reader = RequestReader::new(Trickle(raw));
        assert_eq!(
            reader.next_request(),
            Some(("/r".to_owned(), b"{}\0ok".to_vec()))
        );
        assert_eq!(
            reader.next_request(),
            Some(("/next".to_owned(), Vec::new()))
        );
        assert_eq!(reader.next_request(), None);
    }
}
