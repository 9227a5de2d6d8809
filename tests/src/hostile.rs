//! Generated malformed requests: each one a request no client should send,
//! and each one the API must refuse with a JSON 4xx, changing nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// xorshift64*: a fixed seed gives the same requests on every run, so a
/// failure can be reproduced by its index.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

#[derive(Debug)]
pub struct HostileRequest {
    pub what: &'static str,
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the generator needs to forge tokens from: a live token and another
/// existing user's name. Every request it makes leaves all tables as they are.
pub struct Material {
    pub token: String,
    pub other_user: String,
}

const JSON_CT: (&str, &str) = ("Content-Type", "application/json");

pub fn generate(count: usize, seed: u64, material: &Material) -> Vec<HostileRequest> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| one(i % KINDS, &mut rng, material))
        .collect()
}

const KINDS: usize = 14;

fn request(
    what: &'static str,
    method: &'static str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HostileRequest {
    HostileRequest {
        what,
        method,
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body,
    }
}

/// A chat or a balance read carrying `authorization`, which must not work.
fn authenticated(what: &'static str, rng: &mut Rng, authorization: &str) -> HostileRequest {
    let (method, path) = [("POST", "/chat/"), ("GET", "/balance/")][rng.below(2)];
    let headers = [JSON_CT, ("Authorization", authorization)];
    request(
        what,
        method,
        path,
        &headers,
        br#"{"message": "hi"}"#.to_vec(),
    )
}

fn body_path(rng: &mut Rng) -> &'static str {
    ["/register/", "/login/", "/chat/"][rng.below(3)]
}

fn one(kind: usize, rng: &mut Rng, material: &Material) -> HostileRequest {
    let (user_part, secret) = material
        .token
        .split_once('.')
        .expect("a token has two parts");
    match kind {
        0 => {
            // Invalid UTF-8 inside what would otherwise be a valid body.
            let mut body = br#"{"username": "eve"#.to_vec();
            let len = 1 + rng.below(20);
            // Lone continuation bytes (0x80-0xBF): never valid UTF-8.
            body.extend(rng.bytes(len).into_iter().map(|b| (b & 0x3f) | 0x80));
            body.extend_from_slice(br#"", "password": "long-enough-password"}"#);
            // Under each kind of content type: cargo lambda's emulator took
            // only a binary one (octet-stream) and answered the rest with
            // its own 500; local-gateway now hands every one on as API
            // Gateway does, base64-encoded, and the function must refuse it.
            let content_types: [&[(&str, &str)]; 4] = [
                &[JSON_CT],
                &[("Content-Type", "text/plain")],
                &[("Content-Type", "application/octet-stream")],
                &[],
            ];
            let headers = content_types[rng.below(content_types.len())];
            request("invalid utf-8", "POST", body_path(rng), headers, body)
        }
        1 => {
            let depth = 100 + rng.below(5000);
            let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
            request(
                "deeply nested array",
                "POST",
                body_path(rng),
                &[JSON_CT],
                body,
            )
        }
        2 => {
            let depth = 100 + rng.below(3000);
            let body = format!(
                "{{\"username\": {}1{}, \"password\": \"long-enough-password\"}}",
                "{\"a\":".repeat(depth),
                "}".repeat(depth)
            );
            request(
                "deeply nested object",
                "POST",
                "/register/",
                &[JSON_CT],
                body.into_bytes(),
            )
        }
        3 => {
            let size = 64 * 1024 + 1 + rng.below(200_000);
            let body = format!(
                "{{\"username\": \"{}\", \"password\": \"long-enough-password\"}}",
                "a".repeat(size)
            );
            request(
                "huge body",
                "POST",
                body_path(rng),
                &[JSON_CT],
                body.into_bytes(),
            )
        }
        4 => {
            let number = [
                "1e999999",
                "-1e999999",
                "123456789012345678901234567890",
                "1.7976931348623157e309",
                "-0",
                "NaN",
                "Infinity",
            ][rng.below(7)];
            let body = format!(
                "{{\"username\": {number}, \"password\": {number}, \"message\": {number}}}"
            );
            request(
                "huge or invalid number",
                "POST",
                body_path(rng),
                &[JSON_CT],
                body.into_bytes(),
            )
        }
        5 => {
            let body =
                r#"{"username": "eve", "username": "mallory", "password": "long-enough-password"}"#;
            request(
                "duplicate keys",
                "POST",
                ["/register/", "/login/"][rng.below(2)],
                &[JSON_CT],
                body.as_bytes().to_vec(),
            )
        }
        6 => {
            // A body that is not JSON under a content type that says so.
            let (ct, body) = [
                (
                    "application/x-www-form-urlencoded",
                    "username=eve&password=long-enough-password",
                ),
                ("text/plain", "username: eve"),
                ("application/xml", "<user><username>eve</username></user>"),
                (
                    "multipart/form-data; boundary=x",
                    "--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\neve\r\n--x--",
                ),
                ("application/json; charset=utf-16", "\u{feff}{}"),
            ][rng.below(5)];
            request(
                "wrong content type",
                "POST",
                body_path(rng),
                &[("Content-Type", ct)],
                body.as_bytes().to_vec(),
            )
        }
        7 => {
            let control = char::from_u32(rng.below(32) as u32).unwrap();
            let body = serde_json::json!({"username": format!("ev{control}e"), "password": "long-enough-password"});
            request(
                "control character in username",
                "POST",
                "/register/",
                &[JSON_CT],
                body.to_string().into_bytes(),
            )
        }
        8 => {
            // The username part of another user with this user's secret.
            let forged = format!("{}.{secret}", base64_url(&material.other_user));
            authenticated("forged username part", rng, &forged)
        }
        9 => {
            let cut = 1 + rng.below(material.token.len() - 1);
            let token = match rng.below(4) {
                0 => material.token[..cut].to_owned(),
                1 => format!("{}{}", material.token, "A".repeat(1 + rng.below(8))),
                2 => format!("{}=", material.token),
                _ => format!("{user_part}.{}", "A".repeat(secret.len())),
            };
            authenticated("truncated, padded or guessed token", rng, &token)
        }
        10 => {
            let scheme = [
                "Basic",
                "Digest",
                "Token  Token",
                "Bearer\t",
                "token=",
                "Bearer Bearer",
            ][rng.below(6)];
            let value = format!("{scheme} {}", material.token);
            request(
                "foreign auth scheme",
                "POST",
                "/chat/",
                &[JSON_CT, ("Authorization", &value)],
                br#"{"message": "hi"}"#.to_vec(),
            )
        }
        11 => {
            let header = "x".repeat(4096 + rng.below(8192));
            let auth = format!("Token {}", "A".repeat(4096 + rng.below(4096)));
            request(
                "oversized headers",
                "POST",
                "/chat/",
                &[JSON_CT, ("X-Padding", &header), ("Authorization", &auth)],
                br#"{"message": "hi"}"#.to_vec(),
            )
        }
        12 => {
            let path = format!(
                "/{}",
                [
                    "admin",
                    "chat",
                    "chats/",
                    "register/../login/",
                    "%2e%2e/",
                    "balance/extra",
                    "REGISTER/"
                ][rng.below(7)]
            );
            let method = ["GET", "POST", "PUT", "DELETE", "PATCH"][rng.below(5)];
            request("unknown path", method, &path, &[JSON_CT], b"{}".to_vec())
        }
        _ => {
            let body = match rng.below(5) {
                0 => serde_json::json!({"username": [], "password": {}}),
                1 => serde_json::json!({"username": true, "password": false}),
                2 => serde_json::json!({"username": "", "password": ""}),
                3 => {
                    serde_json::json!({"username": "a".repeat(151), "password": "long-enough-password"})
                }
                _ => serde_json::json!({"username": "eve", "password": "x".repeat(1025)}),
            };
            request(
                "wrong types and limits",
                "POST",
                ["/register/", "/login/"][rng.below(2)],
                &[JSON_CT],
                body.to_string().into_bytes(),
            )
        }
    }
}

fn base64_url(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_requests() {
        let material = Material {
            token: "YWxpY2U.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AAAAA9IZXAAFlOZpcJC9qBypkgpoLlCEu".into(),
            other_user: "bob".into(),
        };
        let a = generate(50, 7, &material);
        let b = generate(50, 7, &material);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.body == y.body && x.path == y.path && x.headers == y.headers));
    }
}
