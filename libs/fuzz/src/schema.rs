//! The RPCs and message types of the descriptor set.
use std::collections::HashMap;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

/// One RPC.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// `rapport.loyalty.v1.LoyaltyService`.
    pub service: String,
    /// `Earn`.
    pub method: String,
    /// `.rapport.loyalty.v1.EarnRequest`.
    pub input: String,
    /// Whether the request is a stream.
    pub client_streaming: bool,
    /// Whether the response is a stream.
    pub server_streaming: bool,
}

impl Rpc {
    /// `/rapport.loyalty.v1.LoyaltyService/Earn`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Messages (by full name with the leading dot), enums (their numbers) and services of a descriptor set.
#[derive(Debug, Default)]
pub struct Schema {
    pub(crate) messages: HashMap<String, DescriptorProto>,
    pub(crate) enums: HashMap<String, Vec<i32>>,
    rpcs: Vec<Rpc>,
}

impl Schema {
    /// Rapport's own descriptor set.
    pub fn rapport() -> Self {
        Self::decode(rapport_proto::FILE_DESCRIPTOR_SET).unwrap_or_default()
    }

    /// From an encoded `FileDescriptorSet`.
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let fds = FileDescriptorSet::decode(bytes)?;
        let mut s = Self::default();
        for file in &fds.file {
            let package = file.package();
            let prefix = if package.is_empty() { String::new() } else { format!(".{package}") };
            for m in &file.message_type {
                s.add_message(&prefix, m);
            }
            for e in &file.enum_type {
                s.enums.insert(format!("{prefix}.{}", e.name()), e.value.iter().map(|v| v.number()).collect());
            }
            for svc in &file.service {
                for m in &svc.method {
                    s.rpcs.push(Rpc {
                        service: format!("{package}.{}", svc.name()),
                        method: m.name().to_string(),
                        input: m.input_type().to_string(),
                        client_streaming: m.client_streaming(),
                        server_streaming: m.server_streaming(),
                    });
                }
            }
        }
        Ok(s)
    }

    fn add_message(&mut self, prefix: &str, m: &DescriptorProto) {
        let name = format!("{prefix}.{}", m.name());
        for nested in &m.nested_type {
            self.add_message(&name, nested);
        }
        for e in &m.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e.value.iter().map(|v| v.number()).collect());
        }
        self.messages.insert(name, m.clone());
    }

    /// The RPCs of `service` (full name), in the order the .proto declares them.
    pub fn rpcs(&self, service: &str) -> Vec<Rpc> {
        self.rpcs.iter().filter(|r| r.service == service).cloned().collect()
    }

    /// Every RPC.
    pub fn all_rpcs(&self) -> &[Rpc] {
        &self.rpcs
    }

    /// Whether `name` (`.package.Message`) is known.
    pub fn has_message(&self, name: &str) -> bool {
        self.messages.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rapports_rpcs_and_their_inputs() {
        let s = Schema::rapport();
        let earn = s.rpcs("rapport.loyalty.v1.LoyaltyService").into_iter().find(|r| r.method == "EarnPoints");
        let earn = earn.expect("loyalty's EarnPoints is in the descriptors");
        assert_eq!(earn.path(), "/rapport.loyalty.v1.LoyaltyService/EarnPoints");
        assert!(s.has_message(&earn.input), "{} is known", earn.input);
        let ingest = s.rpcs("rapport.segmentation.v1.SegmentationService");
        assert!(ingest.iter().any(|r| r.method == "IngestEvents" && r.client_streaming));
        assert!(s.has_message(".google.protobuf.Timestamp"), "imports are in the set");
    }
}
