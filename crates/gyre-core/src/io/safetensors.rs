//! A strict reader and writer of the [safetensors](https://github.com/huggingface/safetensors)
//! format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
//! shape and byte range, then the raw little-endian data.
//!
//! [`parse`] borrows the tensor data from the input (nothing is copied) and checks everything
//! the format promises before returning: the header length against the file, the header as
//! UTF-8 JSON with unique keys at every level, `__metadata__` as strings only, every tensor
//! entry with exactly `dtype` (known), `shape` and `data_offsets`, each byte range the size its
//! shape and dtype need (computed with overflow checks), and the ranges tiling the data section
//! with no overlap, gap or trailing byte. Whatever the header claims, parsing allocates no more
//! than a small multiple of the header's size, and no input makes it panic. Every failure is a
//! [`CoreError::Format`] whose `what` names the part (`header length`, `header`,
//! `tensor "0.weight"`, `__metadata__`, `data section`, or `file` for a file of another kind) and
//! whose `detail` gives the numbers. A file of another kind (a PyTorch pickle or zip, ONNX, ...)
//! is only looked at, never executed.
//!
//! [`serialize`] writes `f32` tensors (dtype `F32`) that `safetensors.numpy.load_file` reads.

use super::safetensors_header::{byte_size, parse_header, Entry, Header};
use crate::error::{CoreError, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The largest header accepted: 100 MiB.
pub const MAX_HEADER_LEN: u64 = 100 * 1024 * 1024;

/// The key of the optional string → string metadata object in the header.
pub const METADATA_KEY: &str = "__metadata__";

/// An element type of the safetensors format, spelled as in the header (`"F32"`, `"BF16"`,
/// `"F8_E4M3"`, ...). All little-endian; sub-byte types (`F4`, `F6_*`) are packed.
#[allow(non_camel_case_types)] // the names are the format's own spelling
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    /// Boolean, one byte per element.
    BOOL,
    /// 4-bit float (E2M1), two elements per byte.
    F4,
    /// 6-bit float, 2 exponent and 3 mantissa bits, packed.
    F6_E2M3,
    /// 6-bit float, 3 exponent and 2 mantissa bits, packed.
    F6_E3M2,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// 8-bit float, 5 exponent and 2 mantissa bits.
    F8_E5M2,
    /// 8-bit float, 4 exponent and 3 mantissa bits.
    F8_E4M3,
    /// 8-bit exponent-only scale (E8M0).
    F8_E8M0,
    /// 8-bit float E4M3, finite, NaN as negative zero's pattern, no negative zero.
    F8_E4M3FNUZ,
    /// 8-bit float E5M2, finite, NaN as negative zero's pattern, no negative zero.
    F8_E5M2FNUZ,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16: the upper half of an `f32`.
    BF16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// IEEE 754 single precision.
    F32,
    /// Complex number of two `f32` (real, imaginary).
    C64,
    /// IEEE 754 double precision.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
}

impl Dtype {
    /// Every dtype of the format, in the order of the reference implementation.
    pub const ALL: [Dtype; 22] = [
        Dtype::BOOL,
        Dtype::F4,
        Dtype::F6_E2M3,
        Dtype::F6_E3M2,
        Dtype::U8,
        Dtype::I8,
        Dtype::F8_E5M2,
        Dtype::F8_E4M3,
        Dtype::F8_E8M0,
        Dtype::F8_E4M3FNUZ,
        Dtype::F8_E5M2FNUZ,
        Dtype::I16,
        Dtype::U16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I32,
        Dtype::U32,
        Dtype::F32,
        Dtype::C64,
        Dtype::F64,
        Dtype::I64,
        Dtype::U64,
    ];

    /// The name written in the header (`"F32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::BOOL => "BOOL",
            Dtype::F4 => "F4",
            Dtype::F6_E2M3 => "F6_E2M3",
            Dtype::F6_E3M2 => "F6_E3M2",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::F8_E5M2 => "F8_E5M2",
            Dtype::F8_E4M3 => "F8_E4M3",
            Dtype::F8_E8M0 => "F8_E8M0",
            Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::F32 => "F32",
            Dtype::C64 => "C64",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
        }
    }

    /// The dtype of a header name; `None` for a name the format does not define (names are
    /// case-sensitive).
    pub fn from_name(name: &str) -> Option<Dtype> {
        Some(match name {
            "BOOL" => Dtype::BOOL,
            "F4" => Dtype::F4,
            "F6_E2M3" => Dtype::F6_E2M3,
            "F6_E3M2" => Dtype::F6_E3M2,
            "U8" => Dtype::U8,
            "I8" => Dtype::I8,
            "F8_E5M2" => Dtype::F8_E5M2,
            "F8_E4M3" => Dtype::F8_E4M3,
            "F8_E8M0" => Dtype::F8_E8M0,
            "F8_E4M3FNUZ" => Dtype::F8_E4M3FNUZ,
            "F8_E5M2FNUZ" => Dtype::F8_E5M2FNUZ,
            "I16" => Dtype::I16,
            "U16" => Dtype::U16,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "I32" => Dtype::I32,
            "U32" => Dtype::U32,
            "F32" => Dtype::F32,
            "C64" => Dtype::C64,
            "F64" => Dtype::F64,
            "I64" => Dtype::I64,
            "U64" => Dtype::U64,
            _ => return None,
        })
    }

    /// Bits per element (4 and 6 for the packed sub-byte floats).
    pub fn bits(self) -> u64 {
        match self {
            Dtype::F4 => 4,
            Dtype::F6_E2M3 | Dtype::F6_E3M2 => 6,
            Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::F8_E5M2
            | Dtype::F8_E4M3
            | Dtype::F8_E8M0
            | Dtype::F8_E4M3FNUZ
            | Dtype::F8_E5M2FNUZ => 8,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::C64 | Dtype::F64 | Dtype::I64 | Dtype::U64 => 64,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a parsed file: its name, dtype, shape and raw little-endian bytes, borrowed
/// from the parsed buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorView<'a> {
    /// The tensor's name (its key in the header).
    pub name: String,
    /// The element type.
    pub dtype: Dtype,
    /// The dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// The tensor's bytes, exactly as large as its shape and dtype need.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// The number of elements: the product of the shape (1 for a scalar). Cannot overflow for
    /// a view made by [`parse`], which checked it.
    pub fn num_elements(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// The values as `f32`, in row-major order. `F32` is copied, `F16` and `BF16` widen
    /// exactly, `F64` rounds to nearest. Any other dtype is an error naming the tensor.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        self.check_len()?;
        match self.dtype {
            Dtype::F32 => Ok(self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            Dtype::F64 => Ok(self.data.chunks_exact(8).map(|c| read_f64(c) as f32).collect()),
            Dtype::F16 => Ok(self.data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()),
            Dtype::BF16 => {
                Ok(self.data.chunks_exact(2).map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect())
            }
            other => Err(self.not_float(other, "f32")),
        }
    }

    /// The values as `f64`, in row-major order. `F64` is copied; `F32`, `F16` and `BF16` widen
    /// exactly. Any other dtype is an error naming the tensor.
    pub fn to_f64(&self) -> Result<Vec<f64>> {
        self.check_len()?;
        match self.dtype {
            Dtype::F64 => Ok(self.data.chunks_exact(8).map(read_f64).collect()),
            Dtype::F32 => {
                Ok(self.data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect())
            }
            Dtype::F16 => {
                Ok(self.data.chunks_exact(2).map(|c| f64::from(f16_to_f32(u16::from_le_bytes([c[0], c[1]])))).collect())
            }
            Dtype::BF16 => Ok(self
                .data
                .chunks_exact(2)
                .map(|c| f64::from(bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
                .collect()),
            other => Err(self.not_float(other, "f64")),
        }
    }

    /// A view built by hand (the fields are public) may disagree with itself; say so rather
    /// than drop a partial element.
    fn check_len(&self) -> Result<()> {
        let shape: Vec<u64> = self.shape.iter().map(|&d| d as u64).collect();
        match byte_size(&shape, self.dtype) {
            Ok(n) if n == self.data.len() as u64 => Ok(()),
            Ok(n) => Err(format_error(
                tensor_what(&self.name),
                format!(
                    "shape {:?} of {} takes {n} bytes, but the view holds {}",
                    self.shape,
                    self.dtype,
                    self.data.len()
                ),
            )),
            Err(detail) => Err(format_error(tensor_what(&self.name), detail)),
        }
    }

    fn not_float(&self, dtype: Dtype, target: &str) -> CoreError {
        format_error(
            tensor_what(&self.name),
            format!("has dtype {dtype}, which does not convert to {target} (only F64, F32, F16 and BF16 do)"),
        )
    }
}

fn read_f64(c: &[u8]) -> f64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(c);
    f64::from_le_bytes(b)
}

/// Widens an IEEE 754 half-precision value (given by its bits) to `f32`, exactly: zeros,
/// subnormals, infinities and NaN (payload kept) included.
pub fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exponent = u32::from((h >> 10) & 0x1f);
    let mantissa = u32::from(h & 0x03ff);
    let sign = if negative { 0x8000_0000u32 } else { 0 };
    match exponent {
        0 => {
            // Zero or subnormal: mantissa × 2^-24, exact in f32.
            let magnitude = mantissa as f32 * f32::from_bits(0x3380_0000);
            if negative {
                -magnitude
            } else {
                magnitude
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13)),
    }
}

/// Widens a bfloat16 value (given by its bits) to `f32`, exactly.
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// A parsed safetensors file: its metadata and its tensors, whose data borrow the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsFile<'a> {
    /// The `__metadata__` object (empty when absent).
    pub metadata: BTreeMap<String, String>,
    /// The tensors, in the order of their data offsets (the order of their bytes in the file).
    pub tensors: Vec<TensorView<'a>>,
}

impl SafetensorsFile<'_> {
    /// The tensor of the given name (a linear search), or `None`.
    pub fn get(&self, name: &str) -> Option<&TensorView<'_>> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

pub(super) fn format_error(what: impl Into<String>, detail: impl Into<String>) -> CoreError {
    CoreError::Format { what: what.into(), detail: detail.into() }
}

pub(super) fn tensor_what(name: &str) -> String {
    format!("tensor {name:?}")
}

/// Recognises a few other model and data formats by their first bytes, for the error message
/// of a file that is not safetensors. Only consulted once the file has failed as safetensors.
fn foreign_kind(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        Some("a ZIP archive (e.g. a PyTorch .pt/.pth checkpoint or a NumPy .npz)")
    } else if bytes.len() >= 2 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]) {
        Some("a Python pickle (e.g. a legacy PyTorch checkpoint)")
    } else if starts(b"\x93NUMPY") {
        Some("a NumPy .npy array")
    } else if starts(b"\x89HDF\r\n\x1a\n") {
        Some("an HDF5 file (e.g. a Keras .h5 model)")
    } else if starts(b"GGUF") {
        Some("a GGUF model")
    } else if starts(b"\x1f\x8b") {
        Some("a gzip-compressed file")
    } else if bytes.len() >= 3
        && bytes[0] == 0x08
        && bytes[1] < 0x80
        && matches!(bytes[2], 0x12 | 0x1a | 0x22 | 0x3a | 0x42)
    {
        Some("a protobuf message (e.g. an ONNX model)")
    } else if starts(b"{") || starts(b"[") {
        Some("JSON text without the 8-byte header length")
    } else {
        None
    }
}

/// The error for a file whose first bytes are not a safetensors start: names another format
/// when its magic bytes are recognised, else the failed check.
fn not_safetensors(bytes: &[u8], what: &str, detail: String) -> CoreError {
    match foreign_kind(bytes) {
        Some(kind) => format_error("file", format!("not a safetensors file: it looks like {kind} ({what}: {detail})")),
        None => format_error(what, format!("{detail}: not a safetensors file, or a truncated or damaged one")),
    }
}

/// Splits the input into the header text and the data section, checking the header length.
fn split(bytes: &[u8]) -> Result<(&str, &[u8])> {
    let len = bytes.len() as u64;
    let Some((prefix, rest)) = bytes.split_first_chunk::<8>() else {
        let detail = if bytes.is_empty() {
            "the file is empty, but a safetensors file starts with an 8-byte header length".to_string()
        } else {
            format!("the file has {len} bytes, fewer than the 8 of the header length")
        };
        return Err(not_safetensors(bytes, "header length", detail));
    };
    let n = u64::from_le_bytes(*prefix);
    let available = len - 8;
    if n < 2 {
        return Err(not_safetensors(
            bytes,
            "header length",
            format!("is {n}, below 2 (the smallest header is `{{}}`)"),
        ));
    }
    if n > MAX_HEADER_LEN {
        return Err(not_safetensors(
            bytes,
            "header length",
            format!("is {n} bytes, over the limit of 100 MiB ({MAX_HEADER_LEN} bytes)"),
        ));
    }
    if n > available {
        return Err(not_safetensors(
            bytes,
            "header length",
            format!("is {n} bytes, but only {available} bytes follow it"),
        ));
    }
    // n <= available < usize::MAX here, since `rest` has `available` bytes.
    let (header, data) = rest.split_at(n as usize);
    if header[0] != b'{' {
        return Err(not_safetensors(
            bytes,
            "header",
            format!("must be a JSON object starting with '{{', but its first byte is {}", show_byte(header[0])),
        ));
    }
    let text = std::str::from_utf8(header).map_err(|e| {
        format_error("header", format!("is not valid UTF-8 (at byte {} of the {n}-byte header)", e.valid_up_to()))
    })?;
    Ok((text, data))
}

pub(super) fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// Parses and checks a whole safetensors file held in memory; the tensors borrow `bytes`.
/// Every failure is a [`CoreError::Format`] naming the part and the numbers (see the module
/// documentation for the checks).
pub fn parse(bytes: &[u8]) -> Result<SafetensorsFile<'_>> {
    let (text, data) = split(bytes)?;
    let Header { metadata, mut entries } = parse_header(text)?;
    let data_len = data.len() as u64;
    check_entries(&entries, data_len)?;
    entries.sort_by_key(|e| (e.begin, e.end)); // stable: equal (empty) ranges keep header order
    check_coverage(&entries, data_len)?;
    let tensors = views(entries, data)?;
    Ok(SafetensorsFile { metadata, tensors })
}

/// Each entry alone: begin <= end, a byte size that exists, inside the data section, equal
/// to the range.
fn check_entries(entries: &[Entry], data_len: u64) -> Result<()> {
    for e in entries {
        let what = || tensor_what(&e.name);
        let (b, n) = (e.begin, e.end);
        if b > n {
            return Err(format_error(what(), format!("data_offsets [{b}, {n}] begin after they end")));
        }
        let size = byte_size(&e.shape, e.dtype).map_err(|d| format_error(what(), d))?;
        if n > data_len {
            return Err(format_error(
                what(),
                format!("data_offsets [{b}, {n}] reach past the end of the {data_len}-byte data section (a truncated file?)"),
            ));
        }
        if size != n - b {
            let (shape, dtype) = (&e.shape, e.dtype);
            return Err(format_error(
                what(),
                format!("shape {shape:?} of {dtype} takes {size} bytes, but data_offsets [{b}, {n}] span {}", n - b),
            ));
        }
    }
    Ok(())
}

/// The ranges, sorted by offsets, tile the data section: no overlap, no gap, no trailing byte.
fn check_coverage(sorted: &[Entry], data_len: u64) -> Result<()> {
    let mut cursor = 0u64;
    let mut previous: Option<&Entry> = None;
    for e in sorted {
        let (b, n) = (e.begin, e.end);
        if b < cursor {
            let (pname, pb, pe) = previous.map_or(("", 0, 0), |p| (p.name.as_str(), p.begin, p.end));
            return Err(format_error(
                tensor_what(&e.name),
                format!("data_offsets [{b}, {n}] overlap those of tensor {pname:?} [{pb}, {pe}]"),
            ));
        }
        if b > cursor {
            return Err(format_error(
                tensor_what(&e.name),
                format!(
                    "data_offsets [{b}, {n}] leave a gap: bytes {cursor}..{b} of the data section belong to no tensor"
                ),
            ));
        }
        cursor = n;
        previous = Some(e);
    }
    if cursor != data_len {
        let extra = data_len.saturating_sub(cursor);
        return Err(format_error(
            "data section",
            format!(
                "has {extra} trailing bytes after the last tensor (bytes {cursor}..{data_len} belong to no tensor)"
            ),
        ));
    }
    Ok(())
}

/// The checked entries as views into the data section.
fn views(entries: Vec<Entry>, data: &[u8]) -> Result<Vec<TensorView<'_>>> {
    let mut tensors = Vec::with_capacity(entries.len());
    for e in entries {
        let too_big = |n: u64| format_error(tensor_what(&e.name), format!("{n} does not fit in this platform's usize"));
        let shape = e.shape.iter().map(|&d| usize::try_from(d).map_err(|_| too_big(d))).collect::<Result<Vec<_>>>()?;
        let begin = usize::try_from(e.begin).map_err(|_| too_big(e.begin))?;
        let end = usize::try_from(e.end).map_err(|_| too_big(e.end))?;
        let slice = data.get(begin..end).ok_or_else(|| too_big(e.end))?;
        tensors.push(TensorView { name: e.name, dtype: e.dtype, shape, data: slice });
    }
    Ok(tensors)
}

fn json_string(s: &str) -> Result<String> {
    serde_json::to_string(s).map_err(|e| CoreError::invalid("a string", "serialisable to JSON", e))
}

/// Writes `f32` tensors (dtype `F32`, little-endian, in the order given, back to back) and the
/// string metadata as a safetensors file. Names must be unique and not `__metadata__`; each
/// data slice must hold exactly the product of its shape (1 for an empty shape, a scalar).
/// The header is padded with spaces to a multiple of 8 bytes so the data are aligned.
pub fn serialize(tensors: &[(&str, &[usize], &[f32])], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut header = String::from("{");
    if !metadata.is_empty() {
        header.push_str(&json_string(METADATA_KEY)?);
        header.push_str(":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&json_string(k)?);
            header.push(':');
            header.push_str(&json_string(v)?);
        }
        header.push('}');
    }
    let mut names = BTreeSet::new();
    let mut offset = 0usize;
    for (i, &(name, shape, values)) in tensors.iter().enumerate() {
        let what = || tensor_what(name);
        if name == METADATA_KEY {
            return Err(CoreError::invalid(what(), "a name other than the reserved \"__metadata__\"", name));
        }
        if !names.insert(name) {
            return Err(CoreError::invalid(what(), "a name used once", "the name a second time"));
        }
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count != Some(values.len()) {
            let expected = match count {
                Some(c) => format!("{shape:?} ({c} values)"),
                None => format!("{shape:?} (more values than a usize holds)"),
            };
            return Err(CoreError::shape(what(), expected, format!("{} values", values.len())));
        }
        let end = values.len().checked_mul(4).and_then(|n| n.checked_add(offset));
        let Some(end) = end else {
            return Err(CoreError::invalid(what(), "data fitting in memory", "more bytes than a usize holds"));
        };
        if i > 0 || !metadata.is_empty() {
            header.push(',');
        }
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        header.push_str(&format!(
            "{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json_string(name)?,
            dims.join(",")
        ));
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    if header.len() as u64 > MAX_HEADER_LEN {
        return Err(CoreError::invalid(
            "safetensors header",
            format!("at most {MAX_HEADER_LEN} bytes (100 MiB)"),
            format!("{} bytes", header.len()),
        ));
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &(_, _, values) in tensors {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}
