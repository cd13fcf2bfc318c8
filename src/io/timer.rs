//! The one timer: armed at the deadline the core asks for, and the time told to the core when
//! it keeps one (close handshake, heartbeat, idle compressor). An open connection without
//! heartbeat or compression reads no clock and holds no timer.

use std::future::Future as _;
use std::task::Context;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::WebSocket;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Tells the core the time and arms the timer at its next deadline, so this task is woken
    /// then. Returns whether the core did something (queued a ping, timed out): the caller
    /// then goes round its loop again before waiting.
    // Rarely needed: kept out of the body of poll_recv, which every message goes through.
    #[inline(never)]
    pub(super) fn poll_clock(&mut self, cx: &mut Context<'_>) -> bool {
        let mut acted = false;
        loop {
            if !self.conn.needs_clock() {
                self.timer = None;
                return acted;
            }
            acted |= self.conn.handle_timeout(Instant::now().into_std());
            let Some(deadline) = self.conn.poll_timeout() else {
                self.timer = None;
                return acted;
            };
            let deadline = Instant::from_std(deadline);
            let timer = match &mut self.timer {
                Some(timer) => {
                    if timer.deadline() != deadline {
                        timer.as_mut().reset(deadline);
                    }
                    timer
                }
                None => self
                    .timer
                    .insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            if timer.as_mut().poll(cx).is_pending() {
                return acted;
            }
            // Already due: tell the core again.
        }
    }
}
