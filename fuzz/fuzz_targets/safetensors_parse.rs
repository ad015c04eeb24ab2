//! `gyre_core::io::safetensors::parse` on arbitrary bytes: it must return, never panic, never
//! allocate beyond a small multiple of the input, and what it accepts must be consistent:
//! tensors tiling the data section in order, each exactly as large as its shape and dtype
//! need, floats converting, and F32 files surviving a serialize → parse round trip.
#![no_main]

use gyre_core::io::safetensors::{parse, serialize, Dtype};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(file) = parse(bytes) else { return };

    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_start = 8 + header_len;
    let mut cursor = data_start;
    for t in &file.tensors {
        // Views point into the input, back to back, in order.
        let offset = t.data.as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(offset, cursor, "tensor {:?} out of order", t.name);
        cursor += t.data.len();
        let bits = t.shape.iter().map(|&d| d as u128).product::<u128>() * t.dtype.bits() as u128;
        assert_eq!(bits, 8 * t.data.len() as u128, "tensor {:?}: size", t.name);
        assert!(file.get(&t.name).is_some());
        let float = matches!(t.dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16);
        assert_eq!(t.to_f32().is_ok(), float);
        assert_eq!(t.to_f64().map(|v| v.len()).ok(), float.then(|| t.num_elements()));
    }
    assert_eq!(cursor, bytes.len(), "the tensors must cover the data section");

    // F32-only files round-trip through the writer, bit for bit.
    if file.tensors.iter().all(|t| t.dtype == Dtype::F32) {
        let values: Vec<Vec<f32>> = file.tensors.iter().map(|t| t.to_f32().unwrap()).collect();
        let owned: Vec<(&str, &[usize], &[f32])> = file
            .tensors
            .iter()
            .zip(&values)
            .map(|(t, v)| (t.name.as_str(), t.shape.as_slice(), v.as_slice()))
            .collect();
        let written = serialize(&owned, &file.metadata).unwrap();
        let again = parse(&written).unwrap();
        assert_eq!(again.metadata, file.metadata);
        assert_eq!(again.tensors.len(), file.tensors.len());
        for (a, b) in again.tensors.iter().zip(&file.tensors) {
            assert_eq!((&a.name, &a.shape, a.dtype), (&b.name, &b.shape, b.dtype));
            assert_eq!(a.data, b.data);
        }
    }
});
