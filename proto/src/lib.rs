//! Waybill's wire schema: the protobuf messages of the ledger and the gRPC
//! services, generated from `proto/waybill/v1/*.proto`.
//!
//! Protobuf types stop at the edge: the domain crates convert them into their
//! own types with `TryFrom`.

#![allow(missing_debug_implementations)]

/// Version 1 of the schema.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("waybill.v1");
}

/// The encoded `FileDescriptorSet` of every Waybill proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("waybill_descriptor");
