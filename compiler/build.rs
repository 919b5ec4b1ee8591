//! Generates the ONNX protobuf types from the official `proto/onnx.proto`
//! (copied verbatim from the `onnx` 1.23.2 package): protox compiles the
//! .proto in pure Rust (no `protoc` binary on the build machine) and
//! prost-build writes the message structs into `OUT_DIR/onnx.rs`. Byte fields
//! are `bytes::Bytes`, so decoding from a memory map slices it without copying
//! and an initializer's `raw_data` keeps its offset in the file.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = match protox::compile(["proto/onnx.proto"], ["proto"]) {
        Ok(f) => f,
        Err(e) => panic!("proto/onnx.proto does not compile: {e}"),
    };
    if let Err(e) = prost_build::Config::new().bytes(["."]).compile_fds(fds) {
        panic!("generating the ONNX types failed: {e}");
    }
}
