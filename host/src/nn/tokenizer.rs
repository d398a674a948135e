//! CLIP's byte-level BPE tokenizer (OpenAI CLIP, as transformers' `CLIPTokenizer` runs it):
//! NFC-normalise, collapse whitespace and lower-case the text, split it with CLIP's pattern
//! (the special tokens stay whole), map bytes to printable characters, merge by rank, and wrap
//! in start/end tokens, truncated and padded to 77 with the end token (SD v1's padding).

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use crate::error::{io, Error, Result};

/// Context length of SD v1's text encoder.
pub const MAX_LEN: usize = 77;

/// The tokenizer: vocabulary, merge ranks and the split pattern.
#[derive(Debug)]
pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_char: [char; 256],
    pattern: Regex,
    /// `<|startoftext|>`
    pub bos: u32,
    /// `<|endoftext|>` (also the padding)
    pub eos: u32,
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes map to themselves,
/// the others to code points from 256 upwards, in byte order.
fn byte_chars() -> [char; 256] {
    let keep = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut out = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        out[b as usize] = if keep(b) {
            char::from_u32(b).expect("Latin-1")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("valid code point")
        };
    }
    out
}

impl Tokenizer {
    /// Loads `vocab.json` and `merges.txt` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let vp = dir.join("vocab.json");
        let mp = dir.join("merges.txt");
        let vocab: HashMap<String, u32> = serde_json::from_slice(&std::fs::read(&vp).map_err(io(&vp))?).map_err(crate::error::format(&vp, "not a JSON vocabulary"))?;
        let merges = std::fs::read_to_string(&mp).map_err(io(&mp))?;
        let mut ranks = HashMap::new();
        for (i, line) in merges.lines().filter(|l| !l.starts_with("#version") && !l.trim().is_empty()).enumerate() {
            let (a, b) = line.split_once(' ').ok_or_else(|| Error::Invalid(format!("{}: line {} is not a pair: {line:?}", mp.display(), i + 2)))?;
            ranks.insert((a.to_string(), b.to_string()), i);
        }
        let id = |t: &str| vocab.get(t).copied().ok_or_else(|| Error::Invalid(format!("{}: no token {t}", vp.display())));
        let pattern = Regex::new(r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+").expect("valid pattern");
        Ok(Tokenizer { bos: id("<|startoftext|>")?, eos: id("<|endoftext|>")?, vocab, ranks, byte_char: byte_chars(), pattern })
    }

    /// The normalised text that is split into words: NFC, runs of whitespace as one space,
    /// lower case.
    pub fn normalize(text: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let nfc: String = text.nfc().collect();
        let mut out = String::with_capacity(nfc.len());
        let mut space = false;
        for c in nfc.chars() {
            if c.is_whitespace() {
                if !space {
                    out.push(' ');
                }
                space = true;
            } else {
                out.extend(c.to_lowercase());
                space = false;
            }
        }
        out
    }

    fn bpe(&self, word: &str) -> Vec<String> {
        let chars: Vec<char> = word.chars().collect();
        let mut parts: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts.windows(2).enumerate().filter_map(|(i, w)| self.ranks.get(&(w[0].clone(), w[1].clone())).map(|&r| (r, i))).min();
            let Some((_, at)) = best else { break };
            // Merge every occurrence of the best pair, left to right.
            let pair = (parts[at].clone(), parts[at + 1].clone());
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len() && parts[i] == pair.0 && parts[i + 1] == pair.1 {
                    merged.push(format!("{}{}", parts[i], parts[i + 1]));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
            if parts.len() == 1 {
                break;
            }
        }
        parts
    }

    /// Token ids of `text`, without start and end tokens.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let text = Self::normalize(text);
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&text) {
            // The special tokens stay whole (transformers treats them as added tokens).
            match m.as_str() {
                "<|startoftext|>" => {
                    ids.push(self.bos);
                    continue;
                }
                "<|endoftext|>" => {
                    ids.push(self.eos);
                    continue;
                }
                _ => {}
            }
            let mapped: String = m.as_str().bytes().map(|b| self.byte_char[b as usize]).collect();
            for piece in self.bpe(&mapped) {
                ids.push(self.vocab.get(&piece).copied().unwrap_or(self.eos));
            }
        }
        ids
    }

    /// SD v1's input ids: start, up to 75 tokens, end, then end tokens to 77.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        ids.extend(self.tokenize(text).into_iter().take(MAX_LEN - 2));
        ids.push(self.eos);
        ids.resize(MAX_LEN, self.eos);
        ids
    }
}
