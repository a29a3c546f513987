//! Generated protobuf messages and gRPC stubs of every Rapport API. This is the only crate that generates code.
#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Encoded `FileDescriptorSet` of every Rapport .proto (and its imports), served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rapport_descriptor.bin"));

pub mod audit {
    pub mod v1 {
        tonic::include_proto!("rapport.audit.v1");
    }
}

pub mod common {
    pub mod v1 {
        tonic::include_proto!("rapport.common.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("rapport.events.v1");
    }
}

pub mod feedback {
    pub mod v1 {
        tonic::include_proto!("rapport.feedback.v1");
    }
}

pub mod improvement {
    pub mod v1 {
        tonic::include_proto!("rapport.improvement.v1");
    }
}

pub mod loyalty {
    pub mod v1 {
        tonic::include_proto!("rapport.loyalty.v1");
    }
}

pub mod referrals {
    pub mod v1 {
        tonic::include_proto!("rapport.referrals.v1");
    }
}

pub mod segmentation {
    pub mod v1 {
        tonic::include_proto!("rapport.segmentation.v1");
    }
}

pub use prost_types::Timestamp;
