//! Compiles `proto/**/*.proto` with protox (pure Rust), so building needs no
//! system `protoc`, and keeps the encoded descriptors for server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/wgd/v1/tunnel.proto",
        "proto/wgd/v1/route.proto",
        "proto/wgd/v1/bgp.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    // The same descriptors, for gRPC server reflection (`wgd_proto::FILE_DESCRIPTOR_SET`).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("wgd_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;

    // The part of GoBGP's API that the GoBGP follower calls: a client only,
    // and not in the descriptors above (wgd does not serve it).
    let gobgp = "proto/gobgp/apipb.proto";
    println!("cargo:rerun-if-changed={gobgp}");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(protox::compile([gobgp], ["proto"])?)?;
    Ok(())
}
