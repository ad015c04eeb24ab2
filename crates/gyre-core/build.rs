//! Build script: tells the WebAssembly build with threads (`wasm32-wasip1-threads`) from the one
//! without (`wasm32-wasip1`): rustc gives both the same `cfg`s (no `target_feature = "atomics"`),
//! so only cargo's `TARGET` tells them apart (as napi-sys does for the same reason).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(gyre_wasm_threads)");
    if std::env::var("TARGET").as_deref() == Ok("wasm32-wasip1-threads") {
        println!("cargo::rustc-cfg=gyre_wasm_threads");
    }
}
