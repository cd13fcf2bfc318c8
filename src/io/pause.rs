//! Pausing reads on a connection (the seed's `pause()` / `resume()` / `isPaused`), from the
//! connection's task or any other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

/// Pauses and resumes reading on one connection from any task
/// ([`WebSocket::pause_handle`](super::WebSocket::pause_handle)); cheap to clone.
///
/// While paused, `recv` hands out no message and reads nothing from the stream, so the
/// kernel's buffers fill and TCP slows the peer down; what is owed to the peer (pongs, queued
/// messages) is still written, and the close and heartbeat deadlines still run (a heartbeat's
/// pong is not read while paused).
#[derive(Debug, Clone, Default)]
pub struct PauseHandle(Arc<PauseState>);

#[derive(Debug, Default)]
struct PauseState {
    paused: AtomicBool,
    /// The task waiting in `recv` while paused.
    waker: Mutex<Option<Waker>>,
}

impl PauseHandle {
    /// Stops reading: `recv` waits until [`resume`](PauseHandle::resume).
    pub fn pause(&self) {
        self.0.paused.store(true, Ordering::SeqCst);
    }

    /// Reads again, waking a `recv` that waits.
    pub fn resume(&self) {
        self.0.paused.store(false, Ordering::SeqCst);
        let waker = self
            .0
            .waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether reading is paused.
    pub fn is_paused(&self) -> bool {
        self.0.paused.load(Ordering::SeqCst)
    }

    /// Whether reading is paused; if so, `cx` is woken by the next `resume`.
    pub(super) fn poll_paused(&self, cx: &Context<'_>) -> bool {
        if !self.is_paused() {
            return false;
        }
        *self.0.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        // Checked again after the waker is in place, so a resume in between is not lost.
        self.is_paused()
    }
}
