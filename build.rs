//! Generates the Rust types of ONNX's schema (`proto/onnx.proto`) for `model::onnx`, with
//! protox, a protobuf compiler in Rust: the build needs nothing but cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let descriptors = protox::compile(["onnx.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
