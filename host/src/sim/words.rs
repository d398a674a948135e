//! The word space of higher visual voxels: a caption's content words, each a fixed random
//! direction (seeded by the word), averaged.

use rand_chacha::ChaCha8Rng;

use super::cortex::{normal, SEMANTIC_DIM};

/// Function words left out of the word space.
const STOP: &[&str] = &[
    "a", "an", "the", "of", "on", "in", "with", "and", "is", "are", "to", "at", "its", "it", "some", "there", "this", "that", "for", "by", "from", "up", "two", "one", "next", "near", "while", "has",
    "have", "his", "her", "their", "into", "out", "over", "very", "other",
];

/// The word vector of a set of captions: the normalised mean of a fixed random vector per
/// content word (seeded by the word itself, so the same word means the same everywhere).
pub fn semantic(captions: &[String]) -> [f32; SEMANTIC_DIM] {
    use rand::SeedableRng;
    let mut acc = [0f32; SEMANTIC_DIM];
    for cap in captions {
        for word in cap.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 1 && !STOP.contains(w)) {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for b in word.trim_end_matches('s').bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            let mut rng = ChaCha8Rng::seed_from_u64(h);
            acc.iter_mut().for_each(|a| *a += normal(&mut rng));
        }
    }
    let n = acc.iter().map(|v| v * v).sum::<f32>().sqrt();
    if n > 0.0 {
        acc.iter_mut().for_each(|a| *a /= n);
    }
    acc
}
