//! Generated protobuf types and tonic stubs of `participants.v1`, and the encoded file
//! descriptor set that server reflection serves.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("participants.v1");

/// The encoded `FileDescriptorSet` of `participants.proto` and its imports, with comments.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/participants_descriptor.bin"));
