//! wgd's gRPC API: the protobuf definitions under `proto/` and the code
//! tonic generates from them. Servers and clients live in the crates that use
//! them (`wgd` serves `TunnelService`).

/// Version 1 of the API (`package wgd.v1`).
pub mod v1 {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("wgd.v1");
}

/// A client of the part of GoBGP's API (`package apipb`, as of GoBGP
/// v3.10.0) that wgd's GoBGP follower uses: `proto/gobgp/apipb.proto`.
pub mod gobgp {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("apipb");
}

/// The encoded `FileDescriptorSet` of every `.proto` file above (with its
/// imports), which the daemon serves through gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wgd_descriptor.bin"));
