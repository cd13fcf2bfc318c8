//! permessage-deflate (RFC 7692): negotiation and the compression codec.
//!
//! Off on the server unless configured ([`ServerBuilder::deflate`](crate::server::ServerBuilder::deflate)),
//! offered by the client by default ([`ClientBuilder::deflate`](crate::ClientBuilder::deflate)),
//! as in the seed library. After negotiation the parameters are held as `local_*` (what we
//! compress with) and `remote_*` (what the peer compresses with), so the two roles can't be
//! mixed up.
//!
//! # Memory
//! Compression state is created on first use, only on connections that negotiated the
//! extension. Without context takeover on our side, whole messages are compressed with the
//! thread's shared compressor (`shared`), so such a connection holds no compressor at all (a
//! message sent in compressed fragments still uses one of its own, released after it with
//! [`DeflateConfig::release_idle_state`]); with context takeover,
//! [`DeflateConfig::compact_idle_after`] shrinks an idle compressor to its window of history.

pub(crate) mod codec;
pub(crate) mod extensions;
pub(crate) mod negotiation;
pub(crate) mod shared;

pub use negotiation::Negotiated;

/// The zlib compression strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// Normal data.
    #[default]
    Default,
    /// Data of small values with a somewhat random distribution.
    Filtered,
    /// Huffman coding only, no string matching.
    HuffmanOnly,
    /// Run-length encoding: matches of distance one only.
    Rle,
    /// Fixed Huffman codes.
    Fixed,
}

/// Options of permessage-deflate, with the seed library's parameters and tuning knobs.
///
/// ```
/// use enim_labore_occaecati::deflate::DeflateConfig;
/// let mut deflate = DeflateConfig::default();
/// deflate.server_max_window_bits = Some(10);
/// deflate.threshold = 256;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Server: always tell the client the server compresses each message on its own
    /// (`server_no_context_takeover`); a client's request for it is always honoured.
    /// Client: ask the server for it. Default: off.
    pub server_no_context_takeover: bool,
    /// Server: tell the client to compress each message on its own. Client: offer to do so.
    /// Default: off.
    pub client_no_context_takeover: bool,
    /// Server: the largest window (8-15) it compresses with; also honours smaller limits the
    /// client asks for. Client: ask the server to use at most this. Default: none (15).
    pub server_max_window_bits: Option<u8>,
    /// Server: ask the client to compress with at most this window (declining offers of
    /// clients that don't support the parameter). Client: the largest window it compresses
    /// with; `client_max_window_bits` is offered either way, so the server may choose.
    /// Default: none (15).
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0-9. Default: 6 (zlib's default).
    pub level: u8,
    /// zlib memory level, 1-9: more memory, faster and better compression. Default: 8.
    pub mem_level: u8,
    /// zlib strategy. Default: [`Strategy::Default`].
    pub strategy: Strategy,
    /// Messages shorter than this many bytes are sent uncompressed. Default: 1024, as in the
    /// seed library.
    pub threshold: usize,
    /// Drop compression state after each message in a direction without context takeover
    /// (instead of resetting it): the inflater's, and the compressor of a message sent in
    /// compressed fragments, so idle connections hold no compression memory, at the cost of an
    /// allocation per message. Whole messages we send without context takeover use the
    /// thread's shared compressor either way. Default: off.
    pub release_idle_state: bool,
    /// With context takeover, a compressor unused for this long (checked when the connection
    /// is waiting for input) frees its zlib state (about 320 KiB at window 15, memory level 8)
    /// and keeps only its window of history (32 KiB at window 15); the next message rebuilds
    /// the state from that history, so the peer sees an unbroken context. An idle connection
    /// then holds a fraction of a full compressor. `None` keeps the state for the connection's
    /// life. Default: 1 s.
    pub compact_idle_after: Option<std::time::Duration>,
}

impl Default for DeflateConfig {
    fn default() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
            mem_level: 8,
            strategy: Strategy::Default,
            threshold: 1024,
            release_idle_state: false,
            compact_idle_after: Some(std::time::Duration::from_secs(1)),
        }
    }
}

impl DeflateConfig {
    /// Checks the ranges: window bits 8-15, level 0-9, memory level 1-9.
    ///
    /// # Errors
    /// A message naming the first value out of range.
    pub fn validate(&self) -> Result<(), &'static str> {
        for bits in [self.server_max_window_bits, self.client_max_window_bits]
            .into_iter()
            .flatten()
        {
            if !(8..=15).contains(&bits) {
                return Err("window bits must be 8 to 15");
            }
        }
        if self.level > 9 {
            return Err("compression level must be 0 to 9");
        }
        if !(1..=9).contains(&self.mem_level) {
            return Err("memory level must be 1 to 9");
        }
        Ok(())
    }
}
