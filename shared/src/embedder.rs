//! Where embeddings come from: a catalog model of kind `embedding`
//! (`/v1/embeddings`). Bedrock's embedding models plug in from the model
//! crate by implementing [`Embedder`]; without `bedrock_model` an entry is
//! answered by [`LocalEmbedder`], which needs no AWS (`make run`, tests).

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::responder::StartFailure;

/// The vector sizes Amazon Titan Text Embeddings V2 makes, its default
/// (1024) first. The local embedder makes the same, so a request that
/// works locally works against Bedrock.
pub const TITAN_V2_DIMENSIONS: [u32; 3] = [1024, 512, 256];

/// One input's vector, and the input tokens the model reports it read:
/// what the call is charged for.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    pub input_tokens: u64,
}

pub type EmbedFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Embedding, StartFailure>> + Send + 'a>>;

/// Turns one text into one vector. A failure says whether the model read
/// the input before it failed ([`StartFailure`]): what it read is charged.
pub trait Embedder: Send + Sync {
    /// Whether a call costs us money: then the most the request can cost
    /// is held before the first call, and settled after the last (see
    /// `billing::embed`). A free embedder's vectors are made first, then
    /// charged and saved in one transaction.
    fn is_paid(&self) -> bool {
        false
    }

    /// The vector sizes it makes, its default first.
    fn dimensions(&self) -> &[u32];

    /// The vector of `text`, of `dimensions` numbers (one of
    /// [`Embedder::dimensions`]), normalized to length 1.
    fn embed<'a>(&'a self, text: &'a str, dimensions: u32) -> EmbedFuture<'a>;
}

/// A deterministic stand-in for an embedding model: the same text gives
/// the same unit vector every time, different texts different ones. Its
/// usage is one input token per white-space separated word, as the dummy
/// chat model counts, so anyone can work out what a call costs. It knows
/// nothing of meaning: for trying a client, never for retrieval.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalEmbedder;

/// The model id the local embedder is listed under when no catalog names
/// one (`make run`'s default).
pub const LOCAL_EMBEDDING_MODEL: &str = "dummy-embedding";

impl LocalEmbedder {
    /// The vector of `text`: numbers drawn from SHA-256 of the text and
    /// each block's index, then scaled to length 1.
    pub fn vector(text: &str, dimensions: u32) -> Vec<f32> {
        let mut vector = Vec::with_capacity(dimensions as usize);
        let mut block = 0u32;
        while vector.len() < dimensions as usize {
            let digest = Sha256::new()
                .chain_update(block.to_le_bytes())
                .chain_update(text.as_bytes())
                .finalize();
            for pair in digest.chunks_exact(2) {
                if vector.len() == dimensions as usize {
                    break;
                }
                let raw = u16::from_le_bytes([pair[0], pair[1]]);
                // Centred on 0, in [-1, 1].
                vector.push(f32::from(raw) / 32_767.5 - 1.0);
            }
            block += 1;
        }
        let length = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if length > 0.0 {
            vector.iter_mut().for_each(|x| *x /= length);
        }
        vector
    }

    pub fn input_tokens(text: &str) -> u64 {
        text.split_whitespace().count() as u64
    }
}

impl Embedder for LocalEmbedder {
    fn dimensions(&self) -> &[u32] {
        &TITAN_V2_DIMENSIONS
    }

    fn embed<'a>(&'a self, text: &'a str, dimensions: u32) -> EmbedFuture<'a> {
        let embedding = Embedding {
            vector: LocalEmbedder::vector(text, dimensions),
            input_tokens: LocalEmbedder::input_tokens(text),
        };
        Box::pin(async move { Ok(embedding) })
    }
}

/// A vector as OpenAI's `encoding_format: "base64"` sends it, and as a
/// saved call keeps it: its numbers as little-endian 32-bit floats, in
/// standard base64.
pub fn to_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The vector [`to_base64`] wrote; `None` for anything else.
pub fn from_base64(text: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_embedder_is_deterministic_unit_length_and_sized_as_asked() {
        for dimensions in TITAN_V2_DIMENSIONS {
            let a = LocalEmbedder::vector("hello world", dimensions);
            assert_eq!(a.len(), dimensions as usize);
            assert_eq!(a, LocalEmbedder::vector("hello world", dimensions));
            let length: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((length - 1.0).abs() < 1e-4, "{length}");
            assert_ne!(a, LocalEmbedder::vector("hello world!", dimensions));
        }
        assert_eq!(LocalEmbedder::input_tokens("  hello \n world "), 2);
    }

    #[test]
    fn a_vector_survives_base64_exactly() {
        let vector = LocalEmbedder::vector("round trip", 256);
        let text = to_base64(&vector);
        assert_eq!(text.len(), 4 * (256 * 4usize).div_ceil(3));
        assert_eq!(from_base64(&text), Some(vector));
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
        assert_eq!(from_base64("AACA"), None);
        assert_eq!(from_base64("not base64!"), None);
    }
}
