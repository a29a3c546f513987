//! Random messages of a type, written straight in the protobuf wire format from the descriptors.
//!
//! [`Mode::Plausible`] fills fields the way a client would (ids from a small pool so calls meet earlier ones'
//! rows, request ids, scores 0-10, times around the servers' clock, valid enum numbers), so most cases pass
//! validation and reach the store. [`Mode::Hostile`] is what an attacker sends: edge integers, NaN, strings of
//! 100,000 characters, control characters and markup, thousands of repeats, out-of-range enum numbers, times
//! before the epoch or nanos past a second, unknown fields, a field twice, and now and then a wrong wire type or
//! a string that is not UTF-8.
use prost_types::{
    FieldDescriptorProto,
    field_descriptor_proto::{Label, Type},
};
use rand::{Rng, seq::IndexedRandom};

use crate::schema::Schema;

/// What kind of caller the cases imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A well-meaning client.
    Plausible,
    /// An attacker.
    Hostile,
}

/// The fuzzed servers' clock: 2026-06-01T00:00:00Z, in seconds.
pub const NOW_SECS: i64 = 1_780_272_000;

/// Output-only fields of messages that are also inputs (AIP-203: ignored in a request), never filled: a huge
/// value there is ignored, not accepted.
const OUTPUT_ONLY: [(&str, &str); 3] = [
    (".rapport.feedback.v1.Queue", "agent_ids"),
    (".rapport.feedback.v1.Queue", "open_cases"),
    (".rapport.feedback.v1.Queue", "unassigned_cases"),
];

/// Customer and object ids plausible cases draw from, so that calls meet each other's rows.
pub const IDS: [&str; 6] = ["c-1", "c-2", "c-3", "fuzz-1", "1", "2"];

/// A generated request and what is largest in it, so that a caller can tell a cap that is missing (a request
/// holding a text of 100,000 characters or 10,000 repeats of a field must not be accepted).
#[derive(Debug, Clone, Default)]
pub struct Case {
    /// The message's bytes.
    pub bytes: Vec<u8>,
    /// The longest string written, in characters.
    pub longest_text: usize,
    /// The most repeats of one repeated field in one message.
    pub most_repeats: usize,
}

/// One random message of `type_name` (`.package.Message`); empty when the type is unknown.
pub fn generate(schema: &Schema, type_name: &str, mode: Mode, rng: &mut impl Rng) -> Vec<u8> {
    case(schema, type_name, mode, rng).bytes
}

/// [`generate`], with what is largest in the message.
pub fn case(schema: &Schema, type_name: &str, mode: Mode, rng: &mut impl Rng) -> Case {
    let budget = match mode {
        Mode::Plausible => 16 * 1024,
        // Now and then a request as large as a server takes, to meet the caps on batches and texts.
        Mode::Hostile if rng.random_ratio(1, 30) => 2 * 1024 * 1024,
        Mode::Hostile => 64 * 1024,
    };
    let mut g = Gen { schema, mode, rng, budget, written: 0, longest_text: 0, most_repeats: 0 };
    let mut out = Vec::new();
    g.message(type_name, 0, &mut out);
    Case { bytes: out, longest_text: g.longest_text, most_repeats: g.most_repeats }
}

struct Gen<'a, R> {
    schema: &'a Schema,
    mode: Mode,
    rng: &'a mut R,
    budget: usize,
    written: usize,
    longest_text: usize,
    most_repeats: usize,
}

const LEN: u64 = 2;
const VARINT: u64 = 0;
const I64: u64 = 1;
const I32: u64 = 5;

/// Appends `v` as a varint.
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(number: i32, wire: u64, out: &mut Vec<u8>) {
    varint((u64::from(number.unsigned_abs()) << 3) | wire, out);
}

impl<R: Rng> Gen<'_, R> {
    fn hostile(&self) -> bool {
        self.mode == Mode::Hostile
    }

    fn full(&self) -> bool {
        self.written > self.budget
    }

    fn message(&mut self, name: &str, depth: usize, out: &mut Vec<u8>) {
        let Some(m) = self.schema.messages.get(name) else { return };
        if name == ".google.protobuf.Timestamp" && !self.hostile() {
            tag(1, VARINT, out);
            varint((NOW_SECS + self.rng.random_range(-30 * 86_400..30 * 86_400)) as u64, out);
            return;
        }
        // One member of each oneof (sometimes none).
        let chosen: Vec<Option<i32>> = (0..m.oneof_decl.len())
            .map(|i| {
                let members: Vec<i32> = m
                    .field
                    .iter()
                    .filter(|f| f.oneof_index == Some(i as i32) && !f.proto3_optional())
                    .map(|f| f.number())
                    .collect();
                if self.rng.random_ratio(1, 10) { None } else { members.choose(self.rng).copied() }
            })
            .collect();
        let fields = m.field.clone();
        for f in &fields {
            if self.full() {
                break;
            }
            if OUTPUT_ONLY.contains(&(name, f.name())) {
                continue;
            }
            match f.oneof_index {
                Some(i) if !f.proto3_optional() && chosen.get(i as usize).copied().flatten() != Some(f.number()) => {
                    continue;
                }
                Some(_) if !f.proto3_optional() => {}
                _ if !self.present(depth) => continue,
                _ => {}
            }
            let n = if f.label() == Label::Repeated { self.repeats(depth) } else { 1 };
            let mut written = 0;
            for _ in 0..n {
                if self.full() {
                    break;
                }
                self.field(f, depth, out);
                written += 1;
            }
            if f.label() == Label::Repeated {
                self.most_repeats = self.most_repeats.max(written);
            }
        }
        if self.hostile() && self.rng.random_ratio(1, 10) {
            // A field the schema does not have (it must be skipped, not refused).
            tag(self.rng.random_range(1000..5000), VARINT, out);
            varint(self.rng.random(), out);
        }
        if self.hostile()
            && self.rng.random_ratio(1, 20)
            && let Some(f) = fields.choose(self.rng)
            && !matches!(f.r#type(), Type::String | Type::Bytes)
        {
            // The same singular field twice: the last one wins.
            self.field(f, depth, out);
        }
    }

    fn present(&mut self, depth: usize) -> bool {
        match self.mode {
            Mode::Plausible => self.rng.random_bool((0.9 - 0.2 * depth as f64).max(0.15)),
            Mode::Hostile => self.rng.random_bool(if depth > 10 { 0.2 } else { 0.6 }),
        }
    }

    fn repeats(&mut self, depth: usize) -> usize {
        if !self.hostile() {
            return self.rng.random_range(0..=if depth == 0 { 3 } else { 2 });
        }
        *[0, 1, 2, 3, 5, 17, 101, 1_001, 10_001, 100_001].choose(self.rng).unwrap_or(&1)
    }

    fn field(&mut self, f: &FieldDescriptorProto, depth: usize, out: &mut Vec<u8>) {
        let start = out.len();
        let n = f.number();
        if self.hostile() && self.rng.random_ratio(1, 60) {
            // A wrong wire type for the field: the request does not decode.
            let wire = *[VARINT, I64, LEN, I32, 3, 4].choose(self.rng).unwrap_or(&LEN);
            tag(n, wire, out);
            varint(self.rng.random_range(0..300), out);
            self.written += out.len() - start;
            return;
        }
        match f.r#type() {
            Type::Message | Type::Group => {
                let limit = if self.hostile() { 12 } else { 4 };
                if depth >= limit {
                    return;
                }
                let mut child = Vec::new();
                self.message(f.type_name(), depth + 1, &mut child);
                tag(n, LEN, out);
                varint(child.len() as u64, out);
                out.extend_from_slice(&child);
                // The children counted themselves.
                self.written += out.len() - start - child.len();
                return;
            }
            Type::String => {
                let s = self.string(f.name());
                self.longest_text = self.longest_text.max(String::from_utf8_lossy(&s).chars().count());
                tag(n, LEN, out);
                varint(s.len() as u64, out);
                out.extend_from_slice(&s);
            }
            Type::Bytes => {
                let len = if self.hostile() { self.rng.random_range(0..4096) } else { self.rng.random_range(0..32) };
                tag(n, LEN, out);
                varint(len as u64, out);
                out.extend((0..len).map(|_| self.rng.random::<u8>()));
            }
            Type::Enum => {
                let values = self.schema.enums.get(f.type_name()).cloned().unwrap_or_default();
                let v = match values.choose(self.rng) {
                    Some(v) if !self.hostile() || self.rng.random_bool(0.7) => i64::from(*v),
                    _ => *[-1, 99, 1_000_000, i64::from(i32::MAX)].choose(self.rng).unwrap_or(&99),
                };
                tag(n, VARINT, out);
                varint(v as u64, out);
            }
            Type::Bool => {
                let v =
                    if self.hostile() && self.rng.random_ratio(1, 10) { u64::MAX } else { self.rng.random_range(0..2) };
                tag(n, VARINT, out);
                varint(v, out);
            }
            Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 => {
                let v = self.int(f.name());
                tag(n, VARINT, out);
                varint(v as u64, out);
            }
            Type::Sint32 | Type::Sint64 => {
                let v = self.int(f.name());
                tag(n, VARINT, out);
                varint(((v << 1) ^ (v >> 63)) as u64, out);
            }
            Type::Fixed32 | Type::Sfixed32 | Type::Float => {
                let bits = if f.r#type() == Type::Float {
                    (self.float(f.name()) as f32).to_bits()
                } else {
                    self.int(f.name()) as u32
                };
                tag(n, I32, out);
                out.extend_from_slice(&bits.to_le_bytes());
            }
            Type::Fixed64 | Type::Sfixed64 | Type::Double => {
                let bits =
                    if f.r#type() == Type::Double { self.float(f.name()).to_bits() } else { self.int(f.name()) as u64 };
                tag(n, I64, out);
                out.extend_from_slice(&bits.to_le_bytes());
            }
        }
        self.written += out.len() - start;
    }

    fn string(&mut self, name: &str) -> Vec<u8> {
        if self.hostile() && !self.rng.random_ratio(1, 4) {
            return self.hostile_string();
        }
        let pick = |rng: &mut R, from: &[&str]| from.choose(rng).copied().unwrap_or("x").to_string();
        let s = if name.ends_with("request_id") {
            format!("rq-{:016x}", self.rng.random::<u64>())
        } else if name == "page_token" {
            String::new()
        } else if name.contains("email") {
            format!("fuzz{}@example.com", self.rng.random_range(0..5))
        } else if name.contains("currency") {
            "EUR".into()
        } else if name.contains("url") {
            "https://example.com/review".into()
        } else if name.contains("zone") {
            pick(self.rng, &["Europe/Paris", "UTC"])
        } else if name.ends_with("date") {
            "2026-06-01".into()
        } else if name.ends_with("_id") || name == "id" || name.ends_with("_ids") || name == "subject" {
            pick(self.rng, &IDS)
        } else if name.contains("code") {
            pick(self.rng, &["FUZZ01", "ABC123", "WELCOME"])
        } else {
            pick(
                self.rng,
                &["vip", "gold", "late delivery", "refund", "colis en retard", "remboursement", "default", "billing"],
            )
        };
        s.into_bytes()
    }

    fn hostile_string(&mut self) -> Vec<u8> {
        match self.rng.random_range(0..12) {
            0 => Vec::new(),
            1 => {
                let n = *[65, 129, 257, 1_001, 5_001, 20_001, 100_001].choose(self.rng).unwrap_or(&257);
                "a".repeat(n).into_bytes()
            }
            2 => "é∂😀ﬁ𝔘".repeat(self.rng.random_range(1..2_000)).into_bytes(),
            3 => b"\0\x1b[31m\r\n\t\x7f".to_vec(),
            4 => b"' OR 1=1; DROP TABLE members; --".to_vec(),
            5 => b"../../../../etc/passwd".to_vec(),
            6 => b"%s%n%x{}{{}}${jndi:ldap://x}".to_vec(),
            7 => "\u{202e}gnp.exe\u{200b}\u{feff}".as_bytes().to_vec(),
            8 => b"   ".to_vec(),
            9 => b"<script>alert(1)</script>".to_vec(),
            // Not UTF-8: the request does not decode.
            10 if self.rng.random_ratio(1, 4) => vec![0xff, 0xfe, 0xc3],
            _ => IDS.choose(self.rng).copied().unwrap_or("c-1").as_bytes().to_vec(),
        }
    }

    fn int(&mut self, name: &str) -> i64 {
        if self.hostile() && !self.rng.random_ratio(1, 4) {
            return *[
                0,
                1,
                -1,
                2,
                127,
                128,
                255,
                65_536,
                i64::from(i32::MAX),
                i64::from(i32::MIN),
                i64::MAX,
                i64::MIN,
                1_000_000_000,
                NOW_SECS * 1000,
                self.rng.random(),
            ]
            .choose(self.rng)
            .unwrap_or(&0);
        }
        let r = &mut self.rng;
        if name == "page_size" {
            r.random_range(0..=50)
        } else if name.contains("score") {
            r.random_range(0..=10)
        } else if name.ends_with("_ms") || name.ends_with("_at") || name.contains("millis") {
            NOW_SECS * 1000 + r.random_range(-30 * 86_400_000..30 * 86_400_000)
        } else if name == "seconds" {
            NOW_SECS + r.random_range(-30 * 86_400..30 * 86_400)
        } else if name == "nanos" {
            r.random_range(0..1_000_000_000)
        } else if name == "k" || name.contains("cluster") {
            r.random_range(2..=6)
        } else if name.contains("days") {
            r.random_range(1..=30)
        } else if name.contains("hours") {
            r.random_range(1..=48)
        } else if name.contains("percent") || name.contains("pct") {
            r.random_range(0..=100)
        } else if name.contains("seed") {
            r.random_range(0..1_000)
        } else {
            r.random_range(0..=1_000)
        }
    }

    fn float(&mut self, name: &str) -> f64 {
        if self.hostile() && !self.rng.random_ratio(1, 4) {
            return *[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, -1.0, 1e308, f64::MIN_POSITIVE, 2.0]
                .choose(self.rng)
                .unwrap_or(&0.0);
        }
        if name.contains("weight") || name.contains("share") || name.contains("rate") {
            self.rng.random_range(0.0..1.0)
        } else {
            self.rng.random_range(0.0..100.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn plausible_cases_decode_as_their_type() {
        let schema = Schema::rapport();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let bytes = generate(&schema, ".rapport.loyalty.v1.EarnPointsRequest", Mode::Plausible, &mut rng);
            let m = rapport_proto::loyalty::v1::EarnPointsRequest::decode(bytes.as_slice()).expect("decodes");
            assert!(m.request_id.is_empty() || m.request_id.starts_with("rq-"), "{m:?}");
        }
    }

    #[test]
    fn hostile_cases_mostly_decode_and_some_do_not() {
        let schema = Schema::rapport();
        let mut rng = StdRng::seed_from_u64(11);
        let (mut ok, mut bad) = (0, 0);
        for _ in 0..500 {
            let bytes = generate(&schema, ".rapport.segmentation.v1.CreateSegmentRequest", Mode::Hostile, &mut rng);
            match rapport_proto::segmentation::v1::CreateSegmentRequest::decode(bytes.as_slice()) {
                Ok(_) => ok += 1,
                Err(_) => bad += 1,
            }
        }
        assert!(ok > 250 && bad > 5, "{ok} decoded, {bad} did not");
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            varint(v, &mut out);
            assert_eq!(prost::encoding::decode_varint(&mut out.as_slice()).ok(), Some(v));
        }
    }
}
