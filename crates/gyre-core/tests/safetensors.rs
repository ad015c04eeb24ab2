//! The safetensors reader and writer: round trips, the f16/bf16/f64 conversions, every file
//! of the malformed corpus (`tests/malformed/`, written by `make_corpus.py`) failing with the
//! error its manifest names, no allocation driven by a header's claims, and interop with
//! Python's `safetensors` package when it is installed.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

use gyre_core::io::safetensors::{bf16_to_f32, f16_to_f32, parse, serialize, Dtype, SafetensorsFile, TensorView};
use gyre_core::CoreError;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Counts the bytes this thread asks the allocator for (other test threads are not counted).
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = ALLOCATED.try_with(|c| c.set(c.get().saturating_add(bytes)));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated by `f` on this thread (a running total: frees are not subtracted).
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

/// A safetensors file from a header text and data, with the 8-byte length in front.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn format_error(bytes: &[u8]) -> (String, String) {
    match parse(bytes) {
        Err(CoreError::Format { what, detail }) => (what, detail),
        Err(other) => panic!("expected a Format error, got {other:?}"),
        Ok(f) => panic!("expected a Format error, got a file of {} tensors", f.tensors.len()),
    }
}

/// A tensor to serialize: name, shape, values.
type Owned = (String, Vec<usize>, Vec<f32>);

fn sample() -> (Vec<Owned>, BTreeMap<String, String>) {
    let tensors = vec![
        ("0.weight_ih_l0".to_string(), vec![4, 3], (0..12).map(|i| i as f32 * 0.25 - 1.5).collect()),
        ("0.bias".to_string(), vec![4], vec![f32::MIN_POSITIVE, -0.0, f32::MAX, f32::INFINITY]),
        ("scalar".to_string(), vec![], vec![std::f32::consts::PI]),
        ("empty".to_string(), vec![3, 0, 2], vec![]),
        ("naïve \"name\"\n".to_string(), vec![1, 1, 2], vec![1e-30, -7.0]),
    ];
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("gyre".to_string(), "{\"cell\": \"lstm\"}".to_string()),
        ("ünïcode".to_string(), "√2 ≈ 1.414".to_string()),
    ]);
    (tensors, metadata)
}

fn serialize_owned(tensors: &[Owned], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let borrowed: Vec<(&str, &[usize], &[f32])> =
        tensors.iter().map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice())).collect();
    serialize(&borrowed, metadata).unwrap()
}

#[test]
fn round_trip_keeps_names_shapes_values_and_metadata() {
    let (tensors, metadata) = sample();
    let bytes = serialize_owned(&tensors, &metadata);
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(header_len % 8, 0, "the header is padded to keep the data 8-byte aligned");
    assert!(bytes[8 + header_len - 1] == b' ' || bytes[8 + header_len - 1] == b'}');

    let parsed = parse(&bytes).unwrap();
    assert_eq!(parsed.metadata, metadata);
    assert_eq!(parsed.tensors.len(), tensors.len());
    for (name, shape, values) in &tensors {
        let t = parsed.get(name).unwrap_or_else(|| panic!("{name:?} missing"));
        assert_eq!(&t.name, name);
        assert_eq!(t.dtype, Dtype::F32);
        assert_eq!(&t.shape, shape);
        assert_eq!(t.num_elements(), values.len());
        assert_eq!(t.data.len(), 4 * values.len());
        let back = t.to_f32().unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let wide = t.to_f64().unwrap();
        assert!(wide.iter().zip(values).all(|(w, v)| *w == f64::from(*v)));
    }
    assert!(parsed.get("absent").is_none());

    // In the order of their data offsets: here, the order written. The empty tensor
    // takes no bytes, between the scalar and the last tensor.
    let names: Vec<&str> = parsed.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, tensors.iter().map(|t| t.0.as_str()).collect::<Vec<_>>());
    assert!(parsed.get("empty").unwrap().data.is_empty());
}

#[test]
fn round_trip_of_nothing_and_of_metadata_only() {
    let none = serialize(&[], &BTreeMap::new()).unwrap();
    assert_eq!(parse(&none).unwrap(), SafetensorsFile { metadata: BTreeMap::new(), tensors: vec![] });
    let metadata = BTreeMap::from([("k".to_string(), String::new())]);
    let only = serialize(&[], &metadata).unwrap();
    assert_eq!(parse(&only).unwrap().metadata, metadata);
}

#[test]
fn tensors_come_in_the_order_of_their_offsets() {
    let header = r#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   "#;
    let mut data = 1.0f32.to_le_bytes().to_vec();
    data.extend_from_slice(&2.0f32.to_le_bytes());
    let bytes = file(header, &data);
    let parsed = parse(&bytes).unwrap();
    let names: Vec<&str> = parsed.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["z", "a", "b"]);
    assert_eq!(parsed.get("a").unwrap().to_f32().unwrap(), [1.0]);
    assert_eq!(parsed.get("b").unwrap().to_f32().unwrap(), [2.0]);
    assert_eq!(parsed.get("z").unwrap().dtype, Dtype::U8);
}

#[test]
fn serialize_rejects_bad_input() {
    let m = BTreeMap::new();
    assert!(matches!(serialize(&[("a", &[2, 2], &[1.0; 3])], &m), Err(CoreError::ShapeMismatch { .. })));
    assert!(matches!(serialize(&[("a", &[], &[])], &m), Err(CoreError::ShapeMismatch { .. })));
    assert!(matches!(serialize(&[("a", &[usize::MAX, 2], &[])], &m), Err(CoreError::ShapeMismatch { .. })));
    assert!(matches!(
        serialize(&[("a", &[1], &[1.0]), ("a", &[1], &[2.0])], &m),
        Err(CoreError::InvalidArgument { .. })
    ));
    assert!(matches!(serialize(&[("__metadata__", &[1], &[1.0])], &m), Err(CoreError::InvalidArgument { .. })));
}

#[test]
fn f16_and_bf16_widen_exactly() {
    let cases: [(u16, f32); 12] = [
        (0x0000, 0.0),
        (0x3c00, 1.0),
        (0xc000, -2.0),
        (0x3555, 0.333_251_95),
        (0x7bff, 65504.0),         // largest finite
        (0x0400, 6.103_515_6e-5),  // smallest normal, 2^-14
        (0x0001, 5.960_464_5e-8),  // smallest subnormal, 2^-24
        (0x03ff, 6.097_555e-5),    // largest subnormal
        (0x8001, -5.960_464_5e-8), // negative subnormal
        (0x7c00, f32::INFINITY),
        (0xfc00, f32::NEG_INFINITY),
        (0x3800, 0.5),
    ];
    for (bits, want) in cases {
        assert_eq!(f16_to_f32(bits), want, "f16 {bits:#06x}");
    }
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    assert!(f16_to_f32(0x7e00).is_nan() && f16_to_f32(0xfe01).is_nan());
    // Every finite f16 survives f16 → f32 → f16 by the textbook rounding of the 13 bits dropped.
    for bits in 0u16..=0xffff {
        let v = f16_to_f32(bits);
        if (bits & 0x7c00) != 0x7c00 && (bits & 0x7c00) != 0 {
            assert_eq!(v.to_bits() & 0x1fff, 0, "{bits:#06x}");
        }
    }

    let bf: [(u16, f32); 6] =
        [(0x0000, 0.0), (0x3f80, 1.0), (0xc040, -3.0), (0x3e80, 0.25), (0x7f80, f32::INFINITY), (0x4049, 3.140_625)];
    for (bits, want) in bf {
        assert_eq!(bf16_to_f32(bits), want, "bf16 {bits:#06x}");
    }
    assert!(bf16_to_f32(0x7fc0).is_nan());
}

#[test]
fn f16_bf16_f64_tensors_convert_and_others_are_errors() {
    let header = concat!(
        r#"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"#,
        r#""b":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]},"#,
        r#""d":{"dtype":"F64","shape":[2],"data_offsets":[10,26]},"#,
        r#""i":{"dtype":"I32","shape":[1],"data_offsets":[26,30]}}"#
    );
    let mut data = Vec::new();
    for h in [0x3c00u16, 0xc000, 0x7bff] {
        data.extend_from_slice(&h.to_le_bytes());
    }
    for b in [0x3f80u16, 0xc040] {
        data.extend_from_slice(&b.to_le_bytes());
    }
    for d in [0.1f64, -1e300] {
        data.extend_from_slice(&d.to_le_bytes());
    }
    data.extend_from_slice(&7i32.to_le_bytes());
    let bytes = file(header, &data);
    let parsed = parse(&bytes).unwrap();
    assert_eq!(parsed.get("h").unwrap().to_f32().unwrap(), [1.0, -2.0, 65504.0]);
    assert_eq!(parsed.get("h").unwrap().to_f64().unwrap(), [1.0, -2.0, 65504.0]);
    assert_eq!(parsed.get("b").unwrap().to_f32().unwrap(), [1.0, -3.0]);
    assert_eq!(parsed.get("b").unwrap().to_f64().unwrap(), [1.0, -3.0]);
    assert_eq!(parsed.get("d").unwrap().to_f64().unwrap(), [0.1, -1e300]);
    assert_eq!(parsed.get("d").unwrap().to_f32().unwrap(), [0.1f32, f32::NEG_INFINITY]);
    for err in [parsed.get("i").unwrap().to_f32().unwrap_err(), parsed.get("i").unwrap().to_f64().unwrap_err()] {
        let CoreError::Format { what, detail } = err else { panic!("{err:?}") };
        assert_eq!(what, "tensor \"i\"");
        assert!(detail.contains("dtype I32"), "{detail}");
    }

    // A view built by hand with too few bytes is an error, not a short vector.
    let bad = TensorView { name: "x".into(), dtype: Dtype::F32, shape: vec![2], data: &[0; 7] };
    assert!(matches!(bad.to_f32(), Err(CoreError::Format { .. })));
}

#[test]
fn every_dtype_has_a_name_and_size() {
    for d in Dtype::ALL {
        assert_eq!(Dtype::from_name(d.name()), Some(d));
        assert_eq!(d.to_string(), d.name());
        assert!(matches!(d.bits(), 4 | 6 | 8 | 16 | 32 | 64));
    }
    assert_eq!(Dtype::from_name("f32"), None);
    // Packed sub-byte types and complex numbers.
    let bytes = file(
        r#"{"q":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]},"s":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[2,5]},"c":{"dtype":"C64","shape":[1],"data_offsets":[5,13]}}"#,
        &[0; 13],
    );
    let parsed = parse(&bytes).unwrap();
    assert_eq!(parsed.get("q").unwrap().data.len(), 2);
    assert_eq!(parsed.get("s").unwrap().data.len(), 3);
    assert_eq!(parsed.get("c").unwrap().data.len(), 8);
}

#[test]
fn trailing_spaces_after_the_json_are_accepted() {
    let bytes = file(&format!("{{}}{}", " ".repeat(37)), &[]);
    assert!(parse(&bytes).unwrap().tensors.is_empty());
    let bytes = file(r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}  "#, &[1, 2]);
    assert_eq!(parse(&bytes).unwrap().tensors[0].data, [1, 2]);
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("malformed")
}

#[test]
fn every_malformed_file_fails_with_the_error_of_its_manifest() {
    let dir = corpus_dir();
    let manifest: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.len() >= 30, "only {} corpus files", manifest.len());

    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "manifest.json" && n != "make_corpus.py")
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, manifest.keys().cloned().collect::<Vec<_>>(), "corpus files and manifest disagree");

    let mut failures = Vec::new();
    for (name, expected) in &manifest {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (what, detail) = match parse(&bytes) {
            Err(CoreError::Format { what, detail }) => (what, detail),
            other => {
                failures.push(format!("{name}: expected a Format error, got {other:?}"));
                continue;
            }
        };
        if what != expected["what"] || !detail.contains(&expected["detail"]) {
            failures.push(format!(
                "{name} ({}):\n  expected what {:?}, detail containing {:?}\n  got      what {what:?}, detail {detail:?}",
                expected["case"], expected["what"], expected["detail"]
            ));
        }
        // The message a user sees carries both parts.
        let shown = CoreError::Format { what: what.clone(), detail: detail.clone() }.to_string();
        assert!(shown.contains(&what) && shown.contains(&detail));
        // Files of other kinds say so.
        if expected["what"] == "file" {
            assert!(detail.starts_with("not a safetensors file"), "{name}: {detail}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files failed:\n{}",
        failures.len(),
        manifest.len(),
        failures.join("\n")
    );
}

#[test]
fn every_prefix_of_a_valid_file_is_rejected_without_panicking() {
    let (tensors, metadata) = sample();
    let bytes = serialize_owned(&tensors, &metadata);
    for cut in 0..bytes.len() {
        assert!(matches!(parse(&bytes[..cut]), Err(CoreError::Format { .. })), "prefix of {cut} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(format_error(&longer).0, "data section");
}

#[test]
fn a_claimed_two_to_the_sixty_element_tensor_fails_fast_without_allocating() {
    let n = 1u64 << 60;
    let claims = [
        // Consistent claims: 2^60 f32 are 2^62 bytes, past the 8 bytes there are.
        format!(r#"{{"a":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#, n * 4),
        // A range that fits the file but not the shape.
        format!(r#"{{"a":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,8]}}}}"#),
        // Spread over dimensions, for a dtype of one byte.
        r#"{"a":{"dtype":"U8","shape":[1073741824,1073741824],"data_offsets":[0,8]}}"#.to_string(),
        // An F64 tensor whose byte size overflows u64.
        format!(r#"{{"a":{{"dtype":"F64","shape":[{n},64],"data_offsets":[0,8]}}}}"#),
    ];
    for header in &claims {
        let bytes = file(header, &[0; 8]);
        let start = std::time::Instant::now();
        let (result, allocated) = allocated_by(|| parse(&bytes));
        let elapsed = start.elapsed();
        let Err(CoreError::Format { what, detail }) = result else { panic!("{header}: {result:?}") };
        assert_eq!(what, "tensor \"a\"", "{detail}");
        // Names, the shape vector, error strings: a few hundred bytes, never the claimed size.
        assert!(allocated < 64 * bytes.len() + 4096, "{header}: {allocated} bytes allocated for {detail}");
        assert!(elapsed.as_secs_f64() < 1.0, "{header}: took {elapsed:?}");
    }

    // A header length of 100 MiB (the limit) over a 20-byte file allocates nothing.
    let mut bytes = (100u64 << 20).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}          ");
    let (result, allocated) = allocated_by(|| parse(&bytes));
    assert!(matches!(result, Err(CoreError::Format { ref what, .. }) if what == "header length"), "{result:?}");
    assert!(allocated < 4096, "{allocated} bytes allocated");
}

#[test]
fn parsing_allocates_a_small_multiple_of_the_input() {
    // Many tiny tensors, a long shape and long metadata: the allocations stay in proportion.
    let mut header = String::from("{");
    let mut offset = 0;
    for i in 0..2000 {
        header.push_str(&format!(
            r#""t{i}":{{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1],"data_offsets":[{offset},{}]}},"#,
            offset + 1
        ));
        offset += 1;
    }
    header.push_str(&format!(
        r#""long":{{"dtype":"U8","shape":[{}0],"data_offsets":[{offset},{offset}]}}}}"#,
        "1,".repeat(20000)
    ));
    let bytes = file(&header, &vec![0; offset]);
    let (result, allocated) = allocated_by(|| parse(&bytes).map(|f| f.tensors.len()));
    assert_eq!(result.unwrap(), 2001);
    assert!(allocated < 16 * bytes.len(), "{allocated} bytes allocated for a {}-byte file", bytes.len());
}

/// `python3` with `safetensors.numpy` importable, or `None` (with a note) when not.
fn python_with_safetensors() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import numpy, safetensors.numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("note: python3 with numpy and safetensors not importable; skipping the interop check");
        return None;
    }
    Some("python3")
}

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gyre-safetensors-{}-{tag}.safetensors", std::process::id()))
}

#[test]
fn python_safetensors_loads_what_serialize_writes() {
    let Some(python) = python_with_safetensors() else { return };
    let (tensors, metadata) = sample();
    let path = temp_path("rust-written");
    std::fs::write(&path, serialize_owned(&tensors, &metadata)).unwrap();
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
tensors = load_file(sys.argv[1])
with safe_open(sys.argv[1], "np") as f:
    metadata = f.metadata()
print(json.dumps({
    "metadata": metadata,
    "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "values": [repr(float(x)) for x in v.ravel()]}
                for k, v in tensors.items()},
}))
"#;
    let out = Command::new(python).args(["-c", script]).arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["metadata"], serde_json::to_value(&metadata).unwrap());
    assert_eq!(got["tensors"].as_object().unwrap().len(), tensors.len());
    for (name, shape, values) in &tensors {
        let t = &got["tensors"][name];
        assert_eq!(t["dtype"], "float32", "{name}");
        assert_eq!(t["shape"], serde_json::to_value(shape).unwrap(), "{name}");
        let py: Vec<f32> = t["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match v.as_str().unwrap() {
                "inf" => f32::INFINITY,
                s => s.parse::<f64>().unwrap() as f32,
            })
            .collect();
        assert_eq!(
            py.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
    }
}

#[test]
fn parse_reads_what_python_safetensors_writes() {
    let Some(python) = python_with_safetensors() else { return };
    let path = temp_path("python-written");
    let script = r#"
import sys
import numpy as np
from safetensors.numpy import save_file
save_file({
    "w32": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "w64": np.array([0.1, -2.5], dtype=np.float64),
    "w16": np.array([1.0, -2.0, 65504.0, 2.0 ** -24], dtype=np.float16),
    "idx": np.array([[1, 2]], dtype=np.int64),
    "none": np.zeros((0, 4), dtype=np.float32),
}, sys.argv[1], metadata={"format": "np", "note": "written by python"})
"#;
    let out = Command::new(python).args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let parsed = parse(&bytes).unwrap();
    assert_eq!(parsed.metadata["note"], "written by python");
    let w32 = parsed.get("w32").unwrap();
    assert_eq!((w32.dtype, w32.shape.as_slice()), (Dtype::F32, &[2, 3][..]));
    assert_eq!(w32.to_f32().unwrap(), [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
    assert_eq!(parsed.get("w64").unwrap().to_f64().unwrap(), [0.1, -2.5]);
    assert_eq!(parsed.get("w16").unwrap().to_f32().unwrap(), [1.0, -2.0, 65504.0, 2f32.powi(-24)]);
    let idx = parsed.get("idx").unwrap();
    assert_eq!((idx.dtype, idx.shape.as_slice(), idx.data.len()), (Dtype::I64, &[1, 2][..], 16));
    assert!(idx.to_f32().is_err());
    assert_eq!(parsed.get("none").unwrap().shape, [0, 4]);
}
