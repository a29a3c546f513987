//! Compiles every .proto under `proto/` with protox (pure Rust: no protoc anywhere) and writes the descriptor set
//! that gRPC reflection serves (tonic-prost-build does not write it when given descriptors).
use std::{env, fs, path::PathBuf};

use prost::Message;

const FILES: &[&str] = &[
    "rapport/audit/v1/audit.proto",
    "rapport/common/v1/common.proto",
    "rapport/events/v1/events.proto",
    "rapport/feedback/v1/feedback.proto",
    "rapport/improvement/v1/improvement.proto",
    "rapport/loyalty/v1/loyalty.proto",
    "rapport/referrals/v1/referrals.proto",
    "rapport/segmentation/v1/segmentation.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(FILES, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("rapport_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
