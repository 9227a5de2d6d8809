//! Images in a user message: OpenAI's `image_url` parts, read from `data:`
//! URLs only. The function never fetches a URL: a Lambda that did would
//! reach any address its network can, on a caller's say-so, and spend its
//! time (and the caller's hold) waiting on someone else's server.

use base64::Engine;
use chat_core::responder::{Image, ImageFormat};
use serde_json::Value;

/// Converse's own limit on one image's bytes (3.75 MB); the request body's
/// limit comes first for any image sent as base64 in JSON.
pub const MAX_IMAGE_BYTES: usize = 3_750_000;
/// Converse's limit on the images of one request.
pub const MAX_IMAGES: usize = 20;

/// The image an `image_url` part holds: `{"type": "image_url",
/// "image_url": {"url": "data:image/<png|jpeg|gif|webp>;base64,...",
/// "detail": "auto" | "low" | "high"}}`. `detail` is accepted and left to
/// the model, which sizes images itself.
pub fn image_of_part(part: &Value) -> Result<Image, String> {
    let shape =
        "an image part is {\"type\": \"image_url\", \"image_url\": {\"url\": \"data:...\"}}";
    let Some(part) = part.as_object().filter(|p| p.len() == 2) else {
        return Err(shape.into());
    };
    let Some(Value::Object(image)) = part.get("image_url") else {
        return Err(shape.into());
    };
    for (name, value) in image {
        match (name.as_str(), value) {
            ("url", Value::String(_)) => {}
            ("detail", Value::Null) => {}
            ("detail", Value::String(d)) if ["auto", "low", "high"].contains(&d.as_str()) => {}
            ("detail", _) => return Err("image_url.detail must be auto, low or high".into()),
            _ => return Err(shape.into()),
        }
    }
    let Some(Value::String(url)) = image.get("url") else {
        return Err(shape.into());
    };
    image_of_url(url)
}

/// A `data:` URL's image, checked: a format Converse takes, base64 that
/// decodes, bytes that are what the media type says, within the limit.
pub fn image_of_url(url: &str) -> Result<Image, String> {
    let Some(data) = url.strip_prefix("data:") else {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Err(
                "image URLs are not fetched by this API: send the image inline as a \
                        data: URL (data:image/png;base64,...)"
                    .into(),
            );
        }
        return Err("an image's url must be a data: URL (data:image/png;base64,...)".into());
    };
    let Some((media_type, payload)) = data.split_once(";base64,") else {
        return Err("an image's data: URL must be base64 (data:image/png;base64,...)".into());
    };
    let Some(format) = ImageFormat::of_media_type(media_type) else {
        return Err(format!(
            "images of type {media_type} are not supported: png, jpeg, gif or webp"
        ));
    };
    if payload.len() / 4 * 3 > MAX_IMAGE_BYTES + 3 {
        return Err(format!("an image may hold at most {MAX_IMAGE_BYTES} bytes"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| "an image's data: URL is not valid base64".to_owned())?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(format!("an image may hold at most {MAX_IMAGE_BYTES} bytes"));
    }
    // Caught here with a clear 400 rather than by the model as a 502.
    if !format.matches(&bytes) {
        return Err(format!("the image's bytes are not {}", format.media_type()));
    }
    Ok(Image { format, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The 8-byte PNG signature and a little more: enough to be a PNG to
    /// this check (the model judges the rest).
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    fn data_url(media_type: &str, bytes: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        format!("data:{media_type};base64,{b64}")
    }

    #[test]
    fn a_png_data_url_is_read_into_its_bytes() {
        let part = json!({"type": "image_url", "image_url": {"url": data_url("image/png", PNG), "detail": "low"}});
        let image = image_of_part(&part).unwrap();
        assert_eq!(image.format, ImageFormat::Png);
        assert_eq!(image.bytes, PNG);
    }

    #[test]
    fn remote_urls_are_refused_and_never_fetched() {
        let why = image_of_url("https://example.com/cat.png").unwrap_err();
        assert!(why.contains("not fetched"), "{why}");
        assert!(image_of_url("ftp://example.com/cat.png").is_err());
    }

    #[test]
    fn bad_images_are_refused_with_the_reason() {
        for (url, says) in [
            (data_url("image/tiff", PNG), "image/tiff"),
            (data_url("image/jpeg", PNG), "not image/jpeg"),
            ("data:image/png;base64,%%%".to_owned(), "not valid base64"),
            ("data:image/png,rawbytes".to_owned(), "must be base64"),
        ] {
            let why = image_of_url(&url).unwrap_err();
            assert!(why.contains(says), "{url}: {why}");
        }
        let part = json!({"type": "image_url", "image_url": {"url": data_url("image/png", PNG), "detail": "max"}});
        assert!(image_of_part(&part).unwrap_err().contains("detail"));
    }
}
