#!/usr/bin/env python3
"""Writes the corpus of malformed safetensors files next to this script, and manifest.json.

Each file breaks one rule of the format (or is another kind of file altogether). The manifest
maps each file name to the error `tests/safetensors.rs` expects from
`gyre_core::safetensors::parse`: the `what` of the `CoreError::Format` exactly, and a
substring of its `detail`, plus a one-line description of the case.

Deterministic and standard library only (Python >= 3.8): running it again rewrites identical
bytes. `python3 make_corpus.py --check` verifies the committed files instead of writing them.
"""

import io
import json
import random
import struct
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024

CASES = {}


def case(name, data, what, detail, description):
    assert name not in CASES, name
    CASES[name] = (bytes(data), {"case": description, "what": what, "detail": detail})


def st(header, data=b"", header_len=None):
    """A safetensors file: 8-byte little-endian header length, header text, data."""
    if isinstance(header, str):
        header = header.encode("utf-8")
    n = len(header) if header_len is None else header_len
    return struct.pack("<Q", n) + header + data


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


F32x2 = struct.pack("<2f", 1.0, 2.0)
F32x4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
GOOD = st(js({"a": entry(), "b": entry(offsets=(8, 16))}), F32x4)

# --- truncation and the header length -------------------------------------------------------
case("empty.safetensors", b"", "header length", "the file is empty", "empty file")
case("tiny.safetensors", b"\x05\x00\x00", "header length", "the file has 3 bytes", "3 bytes, no full length")
case(
    "truncated_header_length.safetensors",
    GOOD[:5],
    "header length",
    "the file has 5 bytes, fewer than the 8",
    "cut inside the 8-byte header length",
)
n_good = struct.unpack("<Q", GOOD[:8])[0]
case(
    "truncated_header.safetensors",
    GOOD[: 8 + 20],
    "header length",
    f"is {n_good} bytes, but only 20 bytes follow it",
    "cut inside the JSON header",
)
case(
    "truncated_data.safetensors",
    GOOD[:-4],
    'tensor "b"',
    "data_offsets [8, 16] reach past the end of the 12-byte data section",
    "cut inside the data of the last tensor",
)
case(
    "header_length_over_limit.safetensors",
    st(js({"a": entry()}), F32x2, header_len=200 * MIB),
    "header length",
    f"is {200 * MIB} bytes, over the limit of 100 MiB",
    "header length of 200 MiB",
)
case(
    "header_length_u64_max.safetensors",
    st(js({"a": entry()}), F32x2, header_len=2**64 - 1),
    "header length",
    f"is {2**64 - 1} bytes, over the limit",
    "header length 2^64 - 1",
)
beyond = st(js({"a": entry()}), F32x2, header_len=1000)
case(
    "header_length_beyond_file.safetensors",
    beyond,
    "header length",
    f"is 1000 bytes, but only {len(beyond) - 8} bytes follow it",
    "header length larger than the rest of the file",
)
case("header_length_zero.safetensors", st("{}", header_len=0), "header length", "is 0, below 2", "header length 0")
case("header_length_one.safetensors", st("{", header_len=1), "header length", "is 1, below 2", "header length 1")

# --- the header as text and JSON -------------------------------------------------------------
case(
    "header_not_utf8.safetensors",
    st(b'{"a\xff":' + js(entry()).encode() + b"}", F32x2),
    "header",
    "is not valid UTF-8 (at byte 3 of the",
    "invalid UTF-8 byte in a tensor name",
)
case(
    "header_invalid_json.safetensors",
    st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],}}', F32x2),
    "header",
    "is not valid JSON",
    "trailing comma in an object",
)
case(
    "header_unterminated_json.safetensors",
    st('{"a":{"dtype":"F32","shape":[2]      ', F32x2),
    "header",
    "is not valid JSON: EOF while parsing",
    "JSON object never closed",
)
case(
    "header_trailing_garbage.safetensors",
    st('{"a":' + js(entry()) + "} x", F32x2),
    "header",
    "is not valid JSON: trailing characters",
    "text after the JSON object",
)
case(
    "header_padded_with_newline.safetensors",
    st('{"a":' + js(entry()) + "}\n", F32x2),
    "header",
    "padded after the JSON with byte 0x0a",
    "header padded with a newline (only spaces may pad it)",
)
case(
    "header_json_array.safetensors",
    st("[" + js(entry()) + "]", F32x2),
    "header",
    "must be a JSON object starting with '{', but its first byte is '['",
    "JSON array instead of an object",
)
case(
    "header_json_null.safetensors",
    st("null"),
    "header",
    "its first byte is 'n'",
    "JSON null instead of an object",
)
case(
    "header_leading_space.safetensors",
    st(" {}"),
    "header",
    "its first byte is 0x20",
    "whitespace before the object",
)

# --- keys -----------------------------------------------------------------------------------
case(
    "duplicate_tensor_name.safetensors",
    st('{"a":' + js(entry()) + ',"a":' + js(entry(offsets=(8, 16))) + "}", F32x4),
    'tensor "a"',
    "the name appears twice",
    "two tensors of the same name",
)
case(
    "duplicate_key_in_entry.safetensors",
    st('{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    'key "dtype" appears twice',
    "dtype given twice in one entry",
)
case(
    "duplicate_metadata.safetensors",
    st('{"__metadata__":{"x":"1"},"__metadata__":{"y":"2"}}'),
    "__metadata__",
    "appears twice in the header",
    "two __metadata__ objects",
)
case(
    "duplicate_metadata_key.safetensors",
    st('{"__metadata__":{"k":"1","k":"2"}}'),
    "__metadata__",
    'key "k" appears twice',
    "a metadata key given twice",
)

# --- tensor entries -------------------------------------------------------------------------
case(
    "unknown_dtype.safetensors",
    st(js({"a": entry(dtype="F31")}), F32x2),
    'tensor "a"',
    'dtype: unknown dtype "F31"',
    "dtype not in the format",
)
case(
    "lowercase_dtype.safetensors",
    st(js({"a": entry(dtype="f32")}), F32x2),
    'tensor "a"',
    'unknown dtype "f32"',
    "dtype names are case-sensitive",
)
case(
    "dtype_not_string.safetensors",
    st('{"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    "dtype: invalid type: integer `32`, expected a string",
    "dtype written as a number",
)
for field in ("dtype", "shape", "data_offsets"):
    e = entry()
    del e[field]
    case(
        f"missing_{field}.safetensors",
        st(js({"a": e}), F32x2),
        'tensor "a"',
        f'missing "{field}"',
        f"entry without {field}",
    )
e = entry()
e["offset"] = 0
case(
    "extra_key_in_entry.safetensors",
    st(js({"a": e}), F32x2),
    'tensor "a"',
    'unexpected key "offset"',
    "entry with a key the format does not have",
)
case(
    "entry_not_object.safetensors",
    st('{"a":[0,8]}', F32x2),
    'tensor "a"',
    "invalid type: sequence, expected a tensor entry",
    "tensor entry that is an array",
)
case(
    "negative_dimension.safetensors",
    st('{"a":{"dtype":"F32","shape":[1,-2],"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    "shape[1]: is -2, negative",
    "negative dimension",
)
case(
    "fractional_dimension.safetensors",
    st('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    "shape[0]: is 1.5, not an integer",
    "fractional dimension",
)
case(
    "float_dimension.safetensors",
    st('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    "shape[0]: is written as the floating-point number 2.0",
    "integral dimension written as a float",
)
case(
    "string_dimension.safetensors",
    st('{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    'shape[0]: invalid type: string "2"',
    "dimension written as a string",
)
case(
    "shape_not_array.safetensors",
    st('{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    "shape: invalid type: integer `2`, expected an array",
    "shape written as a number",
)
case(
    "dimension_beyond_u64.safetensors",
    st('{"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,8]}}', F32x2),
    'tensor "a"',
    "shape[0]: is 1.8446744073709552e19, beyond the largest 64-bit integer",
    "dimension 2^64, past u64",
)
case(
    "data_offsets_three_numbers.safetensors",
    st(js({"a": entry(offsets=(0, 4, 8))}), F32x2),
    'tensor "a"',
    "data_offsets: must be [begin, end], but has 3 numbers",
    "data_offsets with three numbers",
)
case(
    "data_offsets_empty.safetensors",
    st(js({"a": entry(offsets=())}), F32x2),
    'tensor "a"',
    "data_offsets: must be [begin, end], but has 0 numbers",
    "data_offsets empty",
)
case(
    "negative_offset.safetensors",
    st(js({"a": entry(offsets=(-8, 0))}), F32x2),
    'tensor "a"',
    "data_offsets[0]: is -8, negative",
    "negative begin offset",
)

# --- sizes and ranges -----------------------------------------------------------------------
case(
    "begin_after_end.safetensors",
    st(js({"a": entry(offsets=(8, 0))}), F32x2),
    'tensor "a"',
    "data_offsets [8, 0] begin after they end",
    "begin > end",
)
case(
    "offsets_out_of_range.safetensors",
    st(js({"a": entry(offsets=(0, 8)), "b": entry(offsets=(8, 16))}), F32x2),
    'tensor "b"',
    "data_offsets [8, 16] reach past the end of the 8-byte data section",
    "second tensor's range beyond the data section",
)
case(
    "overlapping_offsets.safetensors",
    st(js({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}), F32x2 + F32x2[:4]),
    'tensor "b"',
    'data_offsets [4, 12] overlap those of tensor "a" [0, 8]',
    "two ranges sharing bytes",
)
case(
    "same_offsets.safetensors",
    st(js({"a": entry(offsets=(0, 8)), "b": entry(offsets=(0, 8))}), F32x2),
    'tensor "b"',
    'overlap those of tensor "a" [0, 8]',
    "two tensors with the same range",
)
case(
    "gap_between_tensors.safetensors",
    st(js({"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))}), F32x4 + b"\x00" * 4),
    'tensor "b"',
    "leave a gap: bytes 8..12 of the data section belong to no tensor",
    "unused bytes between two tensors",
)
case(
    "gap_at_start.safetensors",
    st(js({"a": entry(offsets=(4, 12))}), b"\x00" * 4 + F32x2),
    'tensor "a"',
    "leave a gap: bytes 0..4",
    "unused bytes before the first tensor",
)
case(
    "trailing_bytes.safetensors",
    st(js({"a": entry()}), F32x2 + b"\x00" * 4),
    "data section",
    "has 4 trailing bytes after the last tensor (bytes 8..12",
    "bytes after the last tensor",
)
case(
    "data_without_tensors.safetensors",
    st("{}", b"\x00" * 8),
    "data section",
    "has 8 trailing bytes",
    "no tensors but a non-empty data section",
)
case(
    "size_mismatch.safetensors",
    st(js({"a": entry(shape=(2, 3), offsets=(0, 16))}), F32x4),
    'tensor "a"',
    "shape [2, 3] of F32 takes 24 bytes, but data_offsets [0, 16] span 16",
    "range smaller than shape x dtype",
)
case(
    "size_mismatch_dtype.safetensors",
    st(js({"a": entry(dtype="F64", shape=(2,), offsets=(0, 8))}), F32x2),
    'tensor "a"',
    "shape [2] of F64 takes 16 bytes, but data_offsets [0, 8] span 8",
    "range sized for another dtype",
)
case(
    "absurd_dimensions_overflow.safetensors",
    st(js({"a": entry(shape=(2**32, 2**32, 2), offsets=(0, 8))}), F32x2),
    'tensor "a"',
    "shape [4294967296, 4294967296, 2] has more elements than a 64-bit count holds",
    "element count overflows u64",
)
case(
    "absurd_byte_size_overflow.safetensors",
    st(js({"a": entry(dtype="F64", shape=(2**62,), offsets=(0, 8))}), F32x2),
    'tensor "a"',
    "needs more bytes than a 64-bit size holds",
    "element count fits but its byte size overflows",
)
case(
    "huge_tensor_claim.safetensors",
    st(js({"a": entry(shape=(2**60,), offsets=(0, 2**62))}), F32x2),
    'tensor "a"',
    f"data_offsets [0, {2**62}] reach past the end of the 8-byte data section",
    "consistent claim of a 2^60-element tensor in a tiny file",
)
case(
    "subbyte_not_whole_bytes.safetensors",
    st(js({"a": entry(dtype="F4", shape=(3,), offsets=(0, 2))}), b"\x00\x00"),
    'tensor "a"',
    "is 3 elements of 4 bits, not a whole number of bytes",
    "odd number of packed 4-bit floats",
)

# --- metadata -------------------------------------------------------------------------------
case(
    "metadata_non_string_value.safetensors",
    st('{"__metadata__":{"epochs":10}}'),
    "__metadata__",
    'value of "epochs": invalid type: integer `10`, expected a string',
    "metadata value that is a number",
)
case(
    "metadata_nested_object.safetensors",
    st('{"__metadata__":{"config":{"hidden":8}}}'),
    "__metadata__",
    'value of "config": invalid type: map, expected a string',
    "metadata value that is an object",
)
case(
    "metadata_not_object.safetensors",
    st('{"__metadata__":"format=pt"}'),
    "__metadata__",
    'invalid type: string "format=pt", expected a JSON object of string values',
    "metadata that is a string",
)
case(
    "metadata_null.safetensors",
    st('{"__metadata__":null}'),
    "__metadata__",
    "invalid type: null, expected a JSON object",
    "metadata null",
)

# --- other kinds of file --------------------------------------------------------------------
case(
    "pickle_protocol2.pt",
    b"\x80\x02}q\x00X\x06\x00\x00\x00weightq\x01G?\xf0\x00\x00\x00\x00\x00\x00s.",
    "file",
    "not a safetensors file: it looks like a Python pickle",
    "a pickled dict (legacy torch.save)",
)
case(
    "pickle_os_system.pkl",
    b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x04true\x94\x85\x94R\x94.",
    "file",
    "not a safetensors file: it looks like a Python pickle",
    "a pickle that would call os.system if unpickled (it must only be rejected)",
)
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    for name, body in (
        ("archive/data.pkl", b"\x80\x02}q\x00."),
        ("archive/version", b"3\n"),
        ("archive/data/0", F32x2),
    ):
        z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), body)
case(
    "torch_zip.pt",
    buf.getvalue(),
    "file",
    "not a safetensors file: it looks like a ZIP archive",
    "a zip archive like torch.save's",
)
case(
    "model.onnx",
    b"\x08\x07\x12\x07pytorch\x1a\x052.1.0:\x0e\n\x0c\x12\x05graphb\x03\n\x01x",
    "file",
    "not a safetensors file: it looks like a protobuf message (e.g. an ONNX model)",
    "the start of an ONNX model (protobuf)",
)
case(
    "array.npy",
    b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }" + b" " * 45 + b"\n" + F32x2,
    "file",
    "not a safetensors file: it looks like a NumPy .npy array",
    "a NumPy .npy file",
)
case(
    "header_without_length.json",
    js({"a": entry()}).encode(),
    "file",
    "not a safetensors file: it looks like JSON text without the 8-byte header length",
    "a bare JSON header",
)
noise = random.Random(20240601).randbytes(512)
assert struct.unpack("<Q", noise[:8])[0] > 100 * MIB and noise[0] not in (0x08, 0x1F, 0x50, 0x80, 0x93, 0x89)
case(
    "random_bytes.bin",
    noise,
    "header length",
    "over the limit of 100 MiB (104857600 bytes): not a safetensors file",
    "512 random bytes",
)


def main():
    check = sys.argv[1:] == ["--check"]
    manifest = {name: meta for name, (_, meta) in sorted(CASES.items())}
    outputs = {name: data for name, (data, _) in CASES.items()}
    outputs["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    stale = []
    for name, data in sorted(outputs.items()):
        path = HERE / name
        if check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
        else:
            path.write_bytes(data)
    if check:
        if stale:
            print("out of date: " + ", ".join(stale), file=sys.stderr)
            return 1
        print(f"{len(CASES)} files and manifest.json up to date")
    else:
        print(f"wrote {len(CASES)} files and manifest.json to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
