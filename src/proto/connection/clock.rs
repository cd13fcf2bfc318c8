//! Time: the deadlines the connection keeps, told the time by its caller. The close handshake
//! must complete within [`Config::close_timeout`]; a heartbeat ping goes out every interval
//! and must be answered within its timeout ([`Config::heartbeat`]); an unused compressor is
//! compacted after [`DeflateConfig::compact_idle_after`].
//!
//! [`Config::close_timeout`]: crate::Config::close_timeout
//! [`Config::heartbeat`]: crate::Config::heartbeat
//! [`DeflateConfig::compact_idle_after`]: crate::deflate::DeflateConfig::compact_idle_after

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Connection, State};
use crate::config::Heartbeat;
use crate::deflate::codec::Compressor;
use crate::proto::error::Failure;
use crate::proto::frame::OpCode;

/// The keepalive's schedule and the ping it waits for.
#[derive(Debug)]
pub(super) struct HeartbeatState {
    settings: Heartbeat,
    /// When the next ping goes out (armed the first time the caller tells the time).
    next_ping: Option<Instant>,
    /// The sequence number and send time of the unanswered ping.
    waiting: Option<(u64, Instant)>,
    sequence: u64,
    rtt: Option<Duration>,
    /// The last time the caller told ([`handle_timeout`](Connection::handle_timeout)): a
    /// pong's arrival time, for the round trip.
    now: Option<Instant>,
}

impl HeartbeatState {
    pub(super) fn new(settings: Heartbeat) -> HeartbeatState {
        HeartbeatState {
            settings,
            next_ping: None,
            waiting: None,
            sequence: 0,
            rtt: None,
            now: None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.waiting {
            Some((_, sent)) => Some(sent + self.settings.timeout),
            None => self.next_ping,
        }
    }
}

impl Connection {
    /// Whether the connection keeps a deadline now (heartbeat, close handshake, an idle
    /// compressor to compact): while it does, the caller tells it the time on every wake-up
    /// ([`handle_timeout`](Connection::handle_timeout)) and arms a timer at
    /// [`poll_timeout`](Connection::poll_timeout). An open connection without heartbeat or
    /// compression needs no clock at all.
    pub fn needs_clock(&self) -> bool {
        if self.timed_out {
            return false;
        }
        self.heartbeat.is_some()
            || self.state() != State::Open
            || self.deflate_compaction_delay().is_some()
    }

    /// Tells the connection the time, and does what is due: a heartbeat ping, the compaction
    /// of an idle compressor, or the end of the connection when the close handshake or a
    /// heartbeat ping timed out (output owed is then dropped, and
    /// [`is_timed_out`](Connection::is_timed_out) says to close the transport at once).
    /// Returns whether anything was done (a ping queued, the connection timed out).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if let Some(heartbeat) = self.heartbeat.as_mut() {
            heartbeat.now = Some(now);
        }
        if self.timed_out {
            return false;
        }
        let mut acted = false;
        if self.state() != State::Open {
            // The heartbeat stops when the close handshake starts; the close timeout takes over.
            self.heartbeat = None;
            let timeout = self.config.close_timeout;
            let deadline = **self
                .close_deadline
                .get_or_insert_with(|| Box::new(now + timeout));
            if now >= deadline {
                self.time_out(Failure::CloseTimeout);
                return true;
            }
        }
        if let Some(heartbeat) = self.heartbeat.as_mut() {
            if let Some((_, sent)) = heartbeat.waiting {
                if now >= sent + heartbeat.settings.timeout {
                    self.time_out(Failure::HeartbeatTimeout);
                    return true;
                }
            } else {
                let due = *heartbeat
                    .next_ping
                    .get_or_insert(now + heartbeat.settings.interval);
                if now >= due {
                    heartbeat.sequence += 1;
                    heartbeat.waiting = Some((heartbeat.sequence, now));
                    let payload = Bytes::copy_from_slice(&heartbeat.sequence.to_be_bytes());
                    self.write_frame(OpCode::Ping, true, &payload);
                    acted = true;
                }
            }
        }
        self.compact_idle_compressor(now);
        acted
    }

    /// When [`handle_timeout`](Connection::handle_timeout) must be called next, if ever: the
    /// earliest deadline armed by the last call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.timed_out {
            return None;
        }
        let close = if self.state() != State::Open {
            self.close_deadline.as_deref().copied()
        } else {
            None
        };
        let heartbeat = self.heartbeat.as_ref().and_then(|h| h.deadline());
        let compaction = self.deflate.as_ref().and_then(|d| d.compaction_at);
        [close, heartbeat, compaction].into_iter().flatten().min()
    }

    /// The round-trip time the last answered heartbeat ping measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.heartbeat.as_ref().and_then(|h| h.rtt)
    }

    /// A pong arrived: if it answers the heartbeat's ping, the peer is alive, and the next
    /// ping is due an interval after that one went out.
    pub(super) fn on_pong(&mut self, payload: &[u8]) {
        let Some(heartbeat) = self.heartbeat.as_mut() else {
            return;
        };
        let now = heartbeat.now;
        let Some((sequence, sent)) = heartbeat.waiting else {
            return;
        };
        if payload == sequence.to_be_bytes() {
            heartbeat.rtt = now.map(|now| now.saturating_duration_since(sent));
            heartbeat.waiting = None;
            heartbeat.next_ping = Some(sent + heartbeat.settings.interval);
        }
    }

    /// A deadline passed: the connection ends without writing anything more.
    fn time_out(&mut self, failure: Failure) {
        self.timed_out = true;
        // A clean handshake stays clean (the client only waited for the server to close TCP),
        // and a protocol error stays the reason.
        if self.failure.is_none() && !(self.close_sent && self.close_received) {
            self.failure = Some(failure);
        }
        self.heartbeat = None;
        self.frame = None;
        self.message = None;
        self.read_buf = bytes::BytesMut::new();
        self.queue.clear();
        self.queued_len = 0;
        self.staging = bytes::BytesMut::new();
        self.pending_pong = None;
    }

    /// How long an unused compressor may keep its full state, when this connection has one
    /// to compact.
    fn deflate_compaction_delay(&self) -> Option<Duration> {
        let deflate = self.deflate.as_ref()?;
        let live = deflate.compressor.as_ref().is_some_and(Compressor::is_live);
        if live && !deflate.params.local_no_context_takeover {
            deflate.config.compact_idle_after
        } else {
            None
        }
    }

    /// Compacts the compressor once it went a whole delay unused. Checked, not reset, on
    /// activity: a busy connection costs one check per delay, not a timer update per message.
    fn compact_idle_compressor(&mut self, now: Instant) {
        let Some(delay) = self.deflate_compaction_delay() else {
            if let Some(deflate) = self.deflate.as_mut() {
                deflate.compaction_at = None;
            }
            return;
        };
        let Some(deflate) = self.deflate.as_mut() else {
            return;
        };
        match deflate.compaction_at {
            None => deflate.compaction_at = Some(now + delay),
            Some(at) if now >= at => {
                let used = deflate.compressor.as_mut().is_some_and(|c| c.take_used());
                if used {
                    deflate.compaction_at = Some(now + delay);
                } else {
                    if let Some(compressor) = deflate.compressor.as_mut() {
                        compressor.compact();
                    }
                    deflate.compaction_at = None;
                }
            }
            Some(_) => {}
        }
    }
}
