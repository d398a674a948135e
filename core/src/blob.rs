//! Reading tensors out of a safetensors byte slice without allocating or copying.
//!
//! Format (huggingface/safetensors): an 8-byte little-endian header length `n`, `n` bytes of
//! JSON `{"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
//! "__metadata__": {"key": "value"}}`, then the data section. Offsets are relative to the
//! start of the data section. [`Blob::parse`] checks the whole header once (syntax, dtypes,
//! shapes, sizes, that the tensors tile the data section exactly); later look-ups re-scan the
//! header, which is small for a decoder file.

use heapless::Vec;

use crate::error::{Error, Result};

/// The largest header accepted (the same limit as the reference safetensors reader).
pub const MAX_HEADER: usize = 100_000_000;
/// The most tensors a blob may hold: the core reads decoder files, which hold at most six.
pub const MAX_TENSORS: usize = 64;
/// The most dimensions a tensor may have.
pub const MAX_RANK: usize = 8;
/// The deepest nesting of JSON values inside the header.
const MAX_DEPTH: usize = 16;

/// Element types defined by safetensors.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// boolean, one byte
    Bool,
    /// 8-bit float, e4m3
    F8E4M3,
    /// 8-bit float, e5m2
    F8E5M2,
    /// signed 8-bit integer
    I8,
    /// unsigned 8-bit integer
    U8,
    /// signed 16-bit integer
    I16,
    /// unsigned 16-bit integer
    U16,
    /// IEEE half
    F16,
    /// bfloat16
    BF16,
    /// signed 32-bit integer
    I32,
    /// unsigned 32-bit integer
    U32,
    /// IEEE single
    F32,
    /// signed 64-bit integer
    I64,
    /// unsigned 64-bit integer
    U64,
    /// IEEE double
    F64,
}

impl Dtype {
    const ALL: [(Dtype, &'static str); 15] = [
        (Dtype::Bool, "BOOL"),
        (Dtype::F8E4M3, "F8_E4M3"),
        (Dtype::F8E5M2, "F8_E5M2"),
        (Dtype::I8, "I8"),
        (Dtype::U8, "U8"),
        (Dtype::I16, "I16"),
        (Dtype::U16, "U16"),
        (Dtype::F16, "F16"),
        (Dtype::BF16, "BF16"),
        (Dtype::I32, "I32"),
        (Dtype::U32, "U32"),
        (Dtype::F32, "F32"),
        (Dtype::I64, "I64"),
        (Dtype::U64, "U64"),
        (Dtype::F64, "F64"),
    ];

    /// The dtype's name in a safetensors header.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(d, _)| *d == self).map_or("?", |(_, n)| n)
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        use Dtype::*;
        match self {
            Bool | F8E4M3 | F8E5M2 | I8 | U8 => 1,
            I16 | U16 | F16 | BF16 => 2,
            I32 | U32 | F32 => 4,
            I64 | U64 | F64 => 8,
        }
    }

    fn from_name(name: &[u8]) -> Option<Dtype> {
        Self::ALL.iter().find(|(_, n)| n.as_bytes() == name).map(|(d, _)| *d)
    }
}

/// One tensor inside a blob: its dtype, its shape and its bytes (borrowed, not copied).
#[derive(Debug, Clone)]
pub struct TensorView<'a> {
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions, outermost first.
    pub shape: Vec<u64, MAX_RANK>,
    /// The tensor's bytes in the blob, little-endian, row-major.
    pub data: &'a [u8],
}

/// A checked safetensors blob.
#[derive(Debug, Clone, Copy)]
pub struct Blob<'a> {
    header: &'a [u8],
    data: &'a [u8],
}

/// One entry of the header's top-level object.
enum Entry<'a> {
    Tensor { name: &'a [u8], at: usize, info: Info },
    Metadata { key: &'a [u8], value: &'a [u8] },
}

struct Info {
    dtype: Dtype,
    shape: Vec<u64, MAX_RANK>,
    begin: u64,
    end: u64,
}

impl<'a> Blob<'a> {
    /// Parses and checks a whole safetensors blob. Any malformed, truncated or hostile input
    /// gives an [`Error`]; nothing is read outside `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (prefix, rest) = bytes.split_first_chunk::<8>().ok_or(Error::TooShort { len: bytes.len() })?;
        let header_len = u64::from_le_bytes(*prefix);
        if header_len > MAX_HEADER as u64 {
            return Err(Error::HeaderTooLarge { header_len, limit: MAX_HEADER });
        }
        let n = header_len as usize; // <= MAX_HEADER, fits in usize on 32-bit targets
        if n > rest.len() {
            return Err(Error::HeaderPastEnd { header_len, available: rest.len() });
        }
        let (header, data) = rest.split_at(n);
        if let Err(e) = core::str::from_utf8(header) {
            return Err(Error::HeaderNotUtf8 { offset: e.valid_up_to() });
        }
        let blob = Blob { header, data };

        // Check every entry, and collect the byte ranges to check that they tile the data.
        let mut ranges: Vec<(u64, u64), MAX_TENSORS> = Vec::new();
        let mut names: Vec<&'a [u8], MAX_TENSORS> = Vec::new();
        blob.for_each(|entry| {
            if let Entry::Tensor { name, at, info } = entry {
                if names.contains(&name) {
                    return Err(Error::DuplicateTensor { offset: at });
                }
                let available = data.len();
                if info.begin > info.end || info.end > available as u64 {
                    return Err(Error::DataOutOfRange { offset: at, end: info.end, available });
                }
                let numel = info.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
                let expected = numel
                    .and_then(|n| n.checked_mul(info.dtype.size() as u64))
                    .ok_or(Error::ShapeOverflow { offset: at })?;
                let found = info.end - info.begin;
                if expected != found {
                    return Err(Error::SizeMismatch { offset: at, expected, found });
                }
                names.push(name).map_err(|_| Error::TooManyTensors { limit: MAX_TENSORS })?;
                ranges.push((info.begin, info.end)).map_err(|_| Error::TooManyTensors { limit: MAX_TENSORS })?;
            }
            Ok(())
        })?;
        // The ranges must tile the data section: no two overlap, and walking from 0 always
        // finds a range that covers the current position until the end is reached.
        for (i, &(b1, e1)) in ranges.iter().enumerate() {
            for &(b2, e2) in ranges.iter().skip(i + 1) {
                if b1 < e2 && b2 < e1 {
                    return Err(Error::DataNotContiguous { at: b1.max(b2) });
                }
            }
        }
        let mut pos = 0u64;
        while pos < data.len() as u64 {
            match ranges.iter().find(|&&(b, e)| b <= pos && pos < e) {
                Some(&(_, e)) => pos = e,
                None => return Err(Error::DataNotContiguous { at: pos }),
            }
        }
        Ok(blob)
    }

    /// The data section: every tensor's bytes, in file order (they tile it exactly).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The tensor called `name`, if the blob has it.
    pub fn tensor(&self, name: &str) -> Result<Option<TensorView<'a>>> {
        let mut found = None;
        let data = self.data;
        self.for_each(|entry| {
            if let Entry::Tensor { name: n, info, .. } = entry {
                if found.is_none() && n == name.as_bytes() {
                    // Ranges were checked in `parse`; `get` keeps this free of panics anyway.
                    let bytes = usize::try_from(info.begin)
                        .ok()
                        .zip(usize::try_from(info.end).ok())
                        .and_then(|(b, e)| data.get(b..e))
                        .ok_or(Error::DataOutOfRange { offset: 0, end: info.end, available: data.len() })?;
                    found = Some(TensorView { dtype: info.dtype, shape: info.shape, data: bytes });
                }
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The metadata value under `key`, as its raw JSON string contents (escapes not decoded).
    pub fn metadata(&self, key: &str) -> Result<Option<&'a str>> {
        let mut found = None;
        self.for_each(|entry| {
            if let Entry::Metadata { key: k, value } = entry {
                if found.is_none() && k == key.as_bytes() {
                    found = core::str::from_utf8(value).ok();
                }
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Visits every entry of the header, checking its syntax.
    fn for_each(&self, mut visit: impl FnMut(Entry<'a>) -> Result<()>) -> Result<()> {
        let mut c = Cursor { s: self.header, pos: 0 };
        c.expect(b'{', "'{' opening the header")?;
        if !c.eat(b'}') {
            loop {
                let at = c.pos;
                let key = c.string()?;
                c.expect(b':', "':'")?;
                if key == b"__metadata__" {
                    c.expect(b'{', "'{' opening __metadata__")?;
                    if !c.eat(b'}') {
                        loop {
                            let k = c.string()?;
                            c.expect(b':', "':'")?;
                            let v = c.string()?;
                            visit(Entry::Metadata { key: k, value: v })?;
                            if !c.comma_or(b'}')? {
                                break;
                            }
                        }
                    }
                } else {
                    let info = c.tensor_info(at)?;
                    visit(Entry::Tensor { name: key, at, info })?;
                }
                if !c.comma_or(b'}')? {
                    break;
                }
            }
        }
        c.ws();
        if c.pos != c.s.len() {
            return Err(Error::HeaderSyntax { offset: c.pos, expected: "end of header" });
        }
        Ok(())
    }
}

/// A pull parser over the header bytes; the subset of JSON that safetensors headers use,
/// plus skipping of any other value.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn err(&self, expected: &'static str) -> Error {
        Error::HeaderSyntax { offset: self.pos, expected }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// After a member: `,` means another follows (true), `close` ends the container (false).
    fn comma_or(&mut self, close: u8) -> Result<bool> {
        if self.eat(b',') {
            Ok(true)
        } else if self.eat(close) {
            Ok(false)
        } else {
            Err(self.err("',' or a closing bracket"))
        }
    }

    /// A JSON string; returns its raw contents between the quotes, escapes checked.
    fn string(&mut self) -> Result<&'a [u8]> {
        self.expect(b'"', "'\"' opening a string")?;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.err("'\"' closing a string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                        Some(b'u') => {
                            self.pos += 1;
                            for _ in 0..4 {
                                if !matches!(self.peek(), Some(b) if b.is_ascii_hexdigit()) {
                                    return Err(self.err("four hex digits after \\u"));
                                }
                                self.pos += 1;
                            }
                        }
                        _ => return Err(self.err("a valid escape")),
                    }
                }
                Some(b) if b < 0x20 => return Err(self.err("no control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let raw = self.s.get(start..self.pos).unwrap_or_default();
        self.pos += 1;
        Ok(raw)
    }

    /// A non-negative integer that fits in u64.
    fn uint(&mut self) -> Result<u64> {
        self.ws();
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or(self.err("an integer that fits in 64 bits"))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits == 0 {
            return Err(self.err("a non-negative integer"));
        }
        if digits > 1 && self.s.get(start) == Some(&b'0') {
            return Err(Error::HeaderSyntax { offset: start, expected: "an integer without leading zeros" });
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(self.err("an integer, not a fraction"));
        }
        Ok(v)
    }

    /// `{"dtype": .., "shape": [..], "data_offsets": [b, e]}` in any order; other keys skipped.
    fn tensor_info(&mut self, at: usize) -> Result<Info> {
        self.expect(b'{', "'{' opening a tensor entry")?;
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        if !self.eat(b'}') {
            loop {
                let key = self.string()?;
                self.expect(b':', "':'")?;
                match key {
                    b"dtype" => {
                        self.ws();
                        let o = self.pos;
                        let name = self.string()?;
                        dtype = Some(Dtype::from_name(name).ok_or(Error::UnknownDtype { offset: o })?);
                    }
                    b"shape" => {
                        self.ws();
                        let o = self.pos;
                        let mut dims: Vec<u64, MAX_RANK> = Vec::new();
                        self.expect(b'[', "'[' opening a shape")?;
                        if !self.eat(b']') {
                            loop {
                                let d = self.uint()?;
                                dims.push(d).map_err(|_| Error::RankTooLarge { offset: o, limit: MAX_RANK })?;
                                if !self.comma_or(b']')? {
                                    break;
                                }
                            }
                        }
                        shape = Some(dims);
                    }
                    b"data_offsets" => {
                        self.expect(b'[', "'[' opening data_offsets")?;
                        let b = self.uint()?;
                        self.expect(b',', "',' between the two data offsets")?;
                        let e = self.uint()?;
                        self.expect(b']', "']' after two data offsets")?;
                        offsets = Some((b, e));
                    }
                    _ => self.skip_value(0)?,
                }
                if !self.comma_or(b'}')? {
                    break;
                }
            }
        }
        let missing = |what| Error::HeaderSyntax { offset: at, expected: what };
        let dtype = dtype.ok_or(missing("a dtype in the tensor entry"))?;
        let shape = shape.ok_or(missing("a shape in the tensor entry"))?;
        let (begin, end) = offsets.ok_or(missing("data_offsets in the tensor entry"))?;
        Ok(Info { dtype, shape, begin, end })
    }

    /// Skips any JSON value, to a bounded depth.
    fn skip_value(&mut self, depth: usize) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(Error::HeaderTooDeep { offset: self.pos });
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => {
                self.pos += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.expect(b':', "':'")?;
                    self.skip_value(depth + 1)?;
                    if !self.comma_or(b'}')? {
                        return Ok(());
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.comma_or(b']')? {
                        return Ok(());
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                while matches!(self.peek(), Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
                    self.pos += 1;
                }
                Ok(())
            }
            _ => Err(self.err("a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.s.get(self.pos..).is_some_and(|r| r.starts_with(word)) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("true, false or null"))
        }
    }
}
