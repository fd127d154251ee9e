//! Compiles `proto/participants/v1/participants.proto` in pure Rust with protox (no system
//! `protoc`), generates the tonic server and client, and writes the encoded file descriptor
//! set that server reflection serves (it keeps the proto comments, so `grpcurl describe`
//! shows them).

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO: &str = "proto/participants/v1/participants.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile([PROTO], ["proto"])?;
    fs::write(
        out_dir.join("participants_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
