//! The codec of every Rapport RPC: prost's, except that a request that does not decode (truncated, a bad wire type,
//! a string that is not UTF-8, nesting deeper than prost's recursion limit) is the caller's fault, answered with
//! INVALID_ARGUMENT and an `ErrorInfo` whose reason is `MALFORMED_MESSAGE`, not with prost's INTERNAL: hostile or
//! broken bytes must not look like a fault of the service (nor page anyone through the error-rate alert).
use std::marker::PhantomData;

use tonic::{
    Code, Status,
    codec::{BufferSettings, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo` reason of a request that does not decode.
pub const MALFORMED: &str = "MALFORMED_MESSAGE";
/// Longest part of prost's explanation kept in the refusal, in characters.
const MAX_TEXT: usize = 300;
/// `ErrorInfo` domain of that refusal (it happens before any service sees the request).
pub const DOMAIN: &str = "rapport";

/// [`ProstCodec`] with decode failures answered as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct Codec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::default()))
    }
}

/// prost's decoder, its errors turned into INVALID_ARGUMENT `MALFORMED_MESSAGE`.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| malformed(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The refusal of a message prost could not decode (`cause` is prost's status; its text names the field path).
pub fn malformed(cause: &Status) -> Status {
    if cause.code() != Code::Internal {
        return cause.clone();
    }
    let details = ErrorDetails::with_error_info(MALFORMED, DOMAIN, std::collections::HashMap::new());
    // prost's text names the message and field path at fault and the wire problem, never a value; the path of a
    // deeply nested message is long, so the text is cut.
    let mut why = cause.message().to_string();
    if let Some((cut, _)) = why.char_indices().nth(MAX_TEXT) {
        why.truncate(cut);
        why.push('…');
    }
    Status::with_error_details(Code::InvalidArgument, format!("malformed request: {why}"), details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_failure_is_the_callers_fault() {
        let s = malformed(&Status::internal("failed to decode Protobuf message: buffer underflow"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.get_details_error_info().map(|i| i.reason), Some(MALFORMED.to_string()));
        assert!(s.message().starts_with("malformed request: failed to decode"));
    }

    #[test]
    fn a_deep_path_is_cut() {
        let s = malformed(&Status::internal("Condition.node: ".repeat(100)));
        assert!(s.message().chars().count() <= 320, "{}", s.message().len());
    }

    #[test]
    fn other_codes_pass_through() {
        let s = malformed(&Status::resource_exhausted("too large"));
        assert_eq!(s.code(), Code::ResourceExhausted);
    }
}
