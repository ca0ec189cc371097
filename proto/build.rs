//! Generates the protobuf and gRPC code, using a vendored `protoc` so that a
//! fresh machine needs nothing from the OS.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "waybill/v1/events.proto",
        "waybill/v1/commands.proto",
        "waybill/v1/queries.proto",
        "waybill/v1/audit.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        // Ordered maps, so that encoding a record is deterministic.
        .btree_map(".")
        .file_descriptor_set_path(out.join("waybill_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
