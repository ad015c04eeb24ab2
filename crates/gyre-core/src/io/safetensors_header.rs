//! The safetensors header's JSON walked once by serde seeds: unique keys at every level,
//! `__metadata__` as strings only, each tensor entry with exactly `dtype`, `shape` and
//! `data_offsets`, every integer a plain `u64`; a failed check names where it was
//! (`tensor "x"`, `shape`, index) in the message of [`crate::io::safetensors::parse`].

use super::safetensors::{format_error, show_byte, tensor_what, Dtype, METADATA_KEY};
use crate::error::{CoreError, Result};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Where the JSON walk is, for error messages, and the message of a check that failed in it.
struct Ctx {
    /// The part being read: `header`, `__metadata__`, `tensor "x"`.
    what: String,
    /// The field inside it (`shape`, `dtype`, `value of "k"`), if any.
    field: String,
    /// The element index inside that field, if reading an array.
    index: Option<usize>,
    /// The message of a failed check of ours (serde's own messages are taken from its error).
    error: Option<String>,
}

impl Ctx {
    fn enter(&mut self, what: String) {
        self.what = what;
        self.field.clear();
        self.index = None;
    }

    fn field(&mut self, field: impl Into<String>) {
        self.field = field.into();
        self.index = None;
    }

    fn fail<E: de::Error>(&mut self, detail: String) -> E {
        self.error = Some(detail);
        E::custom("check failed")
    }

    fn into_error(self, e: &serde_json::Error) -> CoreError {
        if e.classify() != serde_json::error::Category::Data {
            return format_error("header", format!("is not valid JSON: {e}"));
        }
        let message = self.error.unwrap_or_else(|| e.to_string());
        let detail = match (self.field.is_empty(), self.index) {
            (true, _) => message,
            (false, None) => format!("{}: {message}", self.field),
            (false, Some(i)) => format!("{}[{i}]: {message}", self.field),
        };
        format_error(self.what, detail)
    }
}

/// One tensor entry as written in the header.
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<u64>,
    pub(super) begin: u64,
    pub(super) end: u64,
}

pub(super) struct Header {
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) entries: Vec<Entry>,
}

struct HeaderSeed<'c>(&'c mut Ctx);

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = Header;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Header, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Header, A::Error> {
        let ctx = self.0;
        let mut metadata = None;
        let mut entries = Vec::new();
        let mut names = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == METADATA_KEY {
                ctx.enter(METADATA_KEY.to_string());
                if metadata.is_some() {
                    return Err(ctx.fail("appears twice in the header".to_string()));
                }
                metadata = Some(map.next_value_seed(MetadataSeed(&mut *ctx))?);
            } else {
                ctx.enter(tensor_what(&key));
                if !names.insert(key.clone()) {
                    return Err(ctx.fail("the name appears twice in the header (tensor names must be unique)".into()));
                }
                let (dtype, shape, begin, end) = map.next_value_seed(EntrySeed(&mut *ctx))?;
                entries.push(Entry { name: key, dtype, shape, begin, end });
            }
        }
        ctx.enter("header".to_string());
        Ok(Header { metadata: metadata.unwrap_or_default(), entries })
    }
}

struct MetadataSeed<'c>(&'c mut Ctx);

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_> {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_> {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let ctx = self.0;
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            ctx.field(format!("value of {key:?}"));
            if out.contains_key(&key) {
                ctx.field(String::new());
                return Err(ctx.fail(format!("key {key:?} appears twice (keys must be unique)")));
            }
            let value = map.next_value::<String>()?;
            out.insert(key, value);
        }
        ctx.field(String::new());
        Ok(out)
    }
}

struct EntrySeed<'c>(&'c mut Ctx);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = (Dtype, Vec<u64>, u64, u64);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = (Dtype, Vec<u64>, u64, u64);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor entry: an object with \"dtype\", \"shape\" and \"data_offsets\"")
    }

    // The key is matched once (`Field::of`) and the dtype read by its own seed: an earlier
    // shape of this function, matching the key's string twice with the dtype lookup inline,
    // kept LLVM 22's constraint elimination pass (rustc 1.95, opt-level 3) busy for many
    // minutes.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let ctx = self.0;
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            let Some(field) = Field::of(&key) else { return Err(ctx.fail(unexpected_key(&key))) };
            let seen = match field {
                Field::Dtype => dtype.is_some(),
                Field::Shape => shape.is_some(),
                Field::DataOffsets => offsets.is_some(),
            };
            if seen {
                return Err(ctx.fail(format!("key {key:?} appears twice (keys must be unique)")));
            }
            ctx.field(key);
            match field {
                Field::Dtype => dtype = Some(map.next_value_seed(DtypeSeed(&mut *ctx))?),
                Field::Shape => shape = Some(map.next_value_seed(UintsSeed(&mut *ctx))?),
                Field::DataOffsets => offsets = Some(map.next_value_seed(OffsetsSeed(&mut *ctx))?),
            }
            ctx.field(String::new());
        }
        let Some(dtype) = dtype else { return Err(ctx.fail(missing_key("dtype"))) };
        let Some(shape) = shape else { return Err(ctx.fail(missing_key("shape"))) };
        let Some((begin, end)) = offsets else { return Err(ctx.fail(missing_key("data_offsets"))) };
        Ok((dtype, shape, begin, end))
    }
}

/// The keys of a tensor entry.
#[derive(Clone, Copy)]
enum Field {
    Dtype,
    Shape,
    DataOffsets,
}

impl Field {
    fn of(key: &str) -> Option<Field> {
        match key {
            "dtype" => Some(Field::Dtype),
            "shape" => Some(Field::Shape),
            "data_offsets" => Some(Field::DataOffsets),
            _ => None,
        }
    }
}

fn unexpected_key(key: &str) -> String {
    format!("unexpected key {key:?} (an entry has exactly \"dtype\", \"shape\" and \"data_offsets\")")
}

fn missing_key(key: &str) -> String {
    format!("missing \"{key}\" (an entry has \"dtype\", \"shape\" and \"data_offsets\")")
}

/// A dtype name, as a JSON string.
struct DtypeSeed<'c>(&'c mut Ctx);

impl<'de> DeserializeSeed<'de> for DtypeSeed<'_> {
    type Value = Dtype;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Dtype, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for DtypeSeed<'_> {
    type Value = Dtype;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> std::result::Result<Dtype, E> {
        Dtype::from_name(name).ok_or_else(|| self.0.fail(unknown_dtype(name)))
    }
}

fn unknown_dtype(name: &str) -> String {
    let known: Vec<&str> = Dtype::ALL.iter().map(|d| d.name()).collect();
    format!("unknown dtype {name:?} (known: {})", known.join(", "))
}

/// `data_offsets`: `[begin, end]`.
struct OffsetsSeed<'c>(&'c mut Ctx);

impl<'de> DeserializeSeed<'de> for OffsetsSeed<'_> {
    type Value = (u64, u64);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(u64, u64), D::Error> {
        let ctx = self.0;
        let v = UintsSeed(&mut *ctx).deserialize(d)?;
        match v[..] {
            [begin, end] => Ok((begin, end)),
            _ => Err(ctx.fail(format!("must be [begin, end], but has {} numbers", v.len()))),
        }
    }
}

/// An array of JSON integers in `0..2^64`.
struct UintsSeed<'c>(&'c mut Ctx);

impl<'de> DeserializeSeed<'de> for UintsSeed<'_> {
    type Value = Vec<u64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for UintsSeed<'_> {
    type Value = Vec<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of integers >= 0")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        let ctx = self.0;
        let mut out = Vec::new();
        loop {
            ctx.index = Some(out.len());
            match seq.next_element_seed(UintSeed(&mut *ctx))? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        ctx.index = None;
        Ok(out)
    }
}

/// One JSON integer in `0..2^64`, written without fraction or exponent.
struct UintSeed<'c>(&'c mut Ctx);

impl<'de> DeserializeSeed<'de> for UintSeed<'_> {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<u64, D::Error> {
        d.deserialize_u64(self)
    }
}

impl<'de> Visitor<'de> for UintSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer >= 0")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<u64, E> {
        u64::try_from(v).map_err(|_| self.0.fail(format!("is {v}, negative; it must be an integer >= 0")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<u64, E> {
        let detail = if v < 0.0 {
            format!("is {v:?}, negative; it must be an integer >= 0")
        } else if v.fract() != 0.0 || !v.is_finite() {
            format!("is {v:?}, not an integer")
        } else if v >= 18_446_744_073_709_551_616.0 {
            format!("is {v:?}, beyond the largest 64-bit integer {}", u64::MAX)
        } else {
            format!("is written as the floating-point number {v:?}; it must be a plain integer")
        };
        Err(self.0.fail(detail))
    }
}

/// The byte size of `shape` elements of `dtype`, or why it has none.
pub(super) fn byte_size(shape: &[u64], dtype: Dtype) -> std::result::Result<u64, String> {
    if shape.contains(&0) {
        return Ok(0);
    }
    let count = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has more elements than a 64-bit count holds"))?;
    // At most 2^64 × 64 bits: exact in u128.
    let bits = u128::from(count) * u128::from(dtype.bits());
    if bits % 8 != 0 {
        return Err(format!(
            "shape {shape:?} of {dtype} is {count} elements of {} bits, not a whole number of bytes",
            dtype.bits()
        ));
    }
    u64::try_from(bits / 8).map_err(|_| format!("shape {shape:?} of {dtype} needs more bytes than a 64-bit size holds"))
}

/// The header's JSON, walked once with duplicate-key and type checks at every level.
pub(super) fn parse_header(text: &str) -> Result<Header> {
    let mut ctx = Ctx { what: "header".to_string(), field: String::new(), index: None, error: None };
    let mut de = serde_json::Deserializer::from_str(text);
    let header = match HeaderSeed(&mut ctx).deserialize(&mut de).and_then(|h| de.end().map(|()| h)) {
        Ok(h) => h,
        Err(e) => return Err(ctx.into_error(&e)),
    };
    // serde_json also skips \t, \r and \n after the value; the format pads with spaces only.
    if let Some(&last) = text.as_bytes().iter().rev().find(|&&b| b != b' ') {
        if last != b'}' {
            return Err(format_error(
                "header",
                format!("is padded after the JSON with byte {}; only spaces (0x20) may follow it", show_byte(last)),
            ));
        }
    }
    Ok(header)
}
