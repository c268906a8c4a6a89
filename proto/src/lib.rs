//! wgd's gRPC API: the protobuf definitions under `proto/` and the code
//! tonic generates from them. Servers and clients live in the crates that use
//! them (`wgd` serves `TunnelService`).

/// Version 1 of the API (`package wgd.v1`).
pub mod v1 {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("wgd.v1");
}
