//! A server's TLS connection on rustls' unbuffered API, which leaves the buffers to us: they
//! are kept while the connection is busy and freed when it waits for the peer with nothing to
//! send. rustls' buffered `ServerConnection` (what tokio-rustls wraps) keeps a 4 KiB receive
//! buffer for the connection's life, about half of what an idle TLS connection costs.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConnectionData};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{
    AppDataRecord, ConnectionState, EncodeError, EncryptError, ReadEarlyData, ReadTraffic,
    UnbufferedStatus,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Room reserved for one read from the socket: two whole records of the largest size (16 KiB
/// of data, its header and the largest AEAD overhead). Large messages then take half the
/// reads one record would; the room is freed when the connection is idle.
const READ_ROOM: usize = 2 * (16 * 1024 + 5 + 256);

/// Room for a read when the last one was small (the handshake, a trickle of bytes).
pub(crate) const MIN_READ_ROOM: usize = 4096;

/// Plaintext one `poll_write` takes at most: its records are written before more is taken,
/// so this bounds the encrypted bytes held for a peer that doesn't read. Less (64 KiB) costs
/// pipelined 16 KiB messages about 4 % (`elo-bench run --tls`).
const WRITE_CHUNK: usize = 128 * 1024;

/// Slices of a vectored write shorter than this (frame headers, small payloads) are gathered
/// into one record rather than each costing a record's header, tag and encryption call.
const SMALL_SLICE: usize = 1024;

/// A TLS connection accepted by [`ServerTls::accept`](super::ServerTls::accept), over `S`:
/// `AsyncRead + AsyncWrite` of the application data.
///
/// Idle, it holds no buffer: when a read finds nothing to read and everything encrypted has
/// been written, its receive and send buffers are freed.
pub struct ServerTlsStream<S> {
    io: S,
    conn: UnbufferedServerConnection,
    /// Received TLS bytes not processed yet, `incoming[processed..]`: a partial record, or
    /// records past a full read. What is processed is let go of once before each read, not
    /// per record (each would move what follows it).
    incoming: Vec<u8>,
    processed: usize,
    /// Decrypted data the reader hasn't taken yet: `plaintext[taken..]`.
    plaintext: Vec<u8>,
    taken: usize,
    /// Encrypted bytes to send.
    outgoing: SendBuffer,
    /// The peer sent close_notify: the data ends once `plaintext` is read.
    read_closed: bool,
    /// Our close_notify is queued.
    write_closed: bool,
    /// Room for the next read: twice the last read, between [`MIN_READ_ROOM`] and
    /// [`READ_ROOM`], so a peer trickling bytes in doesn't get two records' room reserved.
    read_room: usize,
    /// The first error: every later call returns it without going back to rustls (which
    /// would process the bad record again, or let data follow a fatal alert).
    failed: Option<rustls::Error>,
    /// The name the client asked for (SNI), noted by [`NoteServerName`].
    server_name: Option<Box<str>>,
}

thread_local! {
    /// The name in the last client hello whose certificate was resolved on this thread:
    /// set by [`NoteServerName`] inside `process_tls_records`, taken right after it.
    static HELLO_SERVER_NAME: Cell<Option<Box<str>>> = const { Cell::new(None) };
}

/// A certificate resolver that notes the name the client asked for, then asks the
/// configuration's own. rustls resolves a certificate for every client hello (resumed sessions
/// too), and its unbuffered connection doesn't keep the name itself.
#[derive(Debug)]
struct NoteServerName(Arc<dyn ResolvesServerCert>);

impl ResolvesServerCert for NoteServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        HELLO_SERVER_NAME.set(hello.server_name().map(Box::from));
        self.0.resolve(hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}

/// `config` with its certificate resolver wrapped in [`NoteServerName`], for
/// [`ServerTlsStream::server_name`].
pub(crate) fn noting_server_names(config: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut config = Arc::unwrap_or_clone(config);
    config.cert_resolver = Arc::new(NoteServerName(config.cert_resolver.clone()));
    Arc::new(config)
}

impl<S> std::fmt::Debug for ServerTlsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTlsStream")
            .field("protocol_version", &self.conn.protocol_version())
            .field("alpn_protocol", &self.conn.alpn_protocol())
            .field("read_closed", &self.read_closed)
            .field("write_closed", &self.write_closed)
            .finish_non_exhaustive()
    }
}

/// What the application has for [`ServerTlsStream::step`] to encrypt once rustls allows it.
enum Write<'a, 'b> {
    Nothing,
    Data(&'a [IoSlice<'b>]),
    CloseNotify,
}

/// What one call into rustls did.
enum Step {
    /// Records were processed or output encoded: call again.
    Progress,
    /// The handshake needs more from the peer.
    NeedInput,
    /// All received records are processed and application data may be sent; the number is how
    /// much of [`Write::Data`] was encrypted (at most [`WRITE_CHUNK`]).
    Writable(usize),
    /// Both sides sent close_notify.
    Closed,
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Encrypted bytes on their way to the socket: `buf[sent..end]`. `buf` stays initialized
/// past `end`, so the records of the next write are encrypted over it rather than into freshly
/// zeroed room.
#[derive(Default)]
struct SendBuffer {
    buf: Vec<u8>,
    end: usize,
    sent: usize,
}

impl SendBuffer {
    /// Appends what `encode` writes, with `room` bytes to write into, or the size rustls asks
    /// for if that is more.
    fn append<E>(
        &mut self,
        room: usize,
        mut encode: impl FnMut(&mut [u8]) -> Result<usize, E>,
        required: impl Fn(&E) -> Option<usize>,
    ) -> Result<(), E> {
        let mut room = room;
        loop {
            if self.buf.len() < self.end + room {
                self.buf.resize(self.end + room, 0);
            }
            match encode(&mut self.buf[self.end..]) {
                Ok(written) => {
                    self.end += written;
                    return Ok(());
                }
                Err(e) => match required(&e) {
                    Some(size) if size > self.buf.len() - self.end => room = size,
                    _ => return Err(e),
                },
            }
        }
    }

    fn unsent(&self) -> &[u8] {
        &self.buf[self.sent..self.end]
    }

    fn advance(&mut self, sent: usize) {
        self.sent += sent;
        if self.sent == self.end {
            self.sent = 0;
            self.end = 0;
        }
    }

    /// Frees the buffer if everything in it is sent.
    fn release(&mut self) {
        if self.end == 0 {
            self.buf = Vec::new();
        }
    }
}

fn encrypt_required(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

fn encode_required(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

/// Decrypted records, of data or early data.
trait Records {
    fn next_record(&mut self) -> Option<Result<AppDataRecord<'_>, rustls::Error>>;
}

impl Records for ReadTraffic<'_, '_, ServerConnectionData> {
    fn next_record(&mut self) -> Option<Result<AppDataRecord<'_>, rustls::Error>> {
        ReadTraffic::next_record(self)
    }
}

impl Records for ReadEarlyData<'_, '_, ServerConnectionData> {
    fn next_record(&mut self) -> Option<Result<AppDataRecord<'_>, rustls::Error>> {
        ReadEarlyData::next_record(self)
    }
}

/// Hands every decrypted record to `read` while it has room (and nothing is waiting before
/// it), the rest to `plaintext`.
fn take_records(
    records: &mut impl Records,
    plaintext: &mut Vec<u8>,
    mut read: Option<&mut ReadBuf<'_>>,
    discard: &mut usize,
) -> Result<Step, rustls::Error> {
    while let Some(record) = records.next_record() {
        let record = record?;
        *discard += record.discard;
        let mut payload = record.payload;
        if let Some(read) = read.as_deref_mut().filter(|_| plaintext.is_empty()) {
            let now = payload.len().min(read.remaining());
            read.put_slice(&payload[..now]);
            payload = &payload[now..];
        }
        plaintext.extend_from_slice(payload);
    }
    Ok(Step::Progress)
}

/// Encrypts `data` as records appended to `out`.
fn encrypt<D>(
    traffic: &mut rustls::unbuffered::WriteTraffic<'_, D>,
    data: &[u8],
    out: &mut SendBuffer,
) -> Result<(), rustls::Error> {
    // Each record adds at most a header, a tag and a content type: 64 bytes is room to spare.
    let room = data.len() + 64 * (data.len() / (16 * 1024) + 1);
    out.append(room, |out| traffic.encrypt(data, out), encrypt_required)
        .map_err(|e| rustls::Error::General(e.to_string()))
}

/// Encrypts the slices in order, up to [`WRITE_CHUNK`] bytes in all: the number taken. Runs of
/// small slices go in one record; large slices are encrypted where they are, without a copy.
fn encrypt_slices<D>(
    traffic: &mut rustls::unbuffered::WriteTraffic<'_, D>,
    slices: &[IoSlice<'_>],
    out: &mut SendBuffer,
) -> Result<usize, rustls::Error> {
    let mut small = [0u8; 4 * SMALL_SLICE];
    let mut gathered = 0;
    let mut taken = 0;
    for slice in slices {
        let slice = &slice[..slice.len().min(WRITE_CHUNK - taken)];
        if slice.len() < SMALL_SLICE {
            if gathered + slice.len() > small.len() {
                encrypt(traffic, &small[..gathered], out)?;
                gathered = 0;
            }
            small[gathered..gathered + slice.len()].copy_from_slice(slice);
            gathered += slice.len();
        } else {
            if gathered > 0 {
                encrypt(traffic, &small[..gathered], out)?;
                gathered = 0;
            }
            encrypt(traffic, slice, out)?;
        }
        taken += slice.len();
        if taken == WRITE_CHUNK {
            break;
        }
    }
    if gathered > 0 {
        encrypt(traffic, &small[..gathered], out)?;
    }
    Ok(taken)
}

impl<S: AsyncRead + AsyncWrite + Unpin> ServerTlsStream<S> {
    /// Runs the server side of the handshake over `io`.
    pub(crate) async fn accept(io: S, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let mut stream = ServerTlsStream {
            io,
            conn: UnbufferedServerConnection::new(config).map_err(tls_error)?,
            incoming: Vec::new(),
            processed: 0,
            plaintext: Vec::new(),
            taken: 0,
            outgoing: SendBuffer::default(),
            read_closed: false,
            write_closed: false,
            read_room: MIN_READ_ROOM,
            failed: None,
            server_name: None,
        };
        std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
        Ok(stream)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            HELLO_SERVER_NAME.set(None);
            let step = self.step(Write::Nothing, None);
            if let Some(name) = HELLO_SERVER_NAME.take() {
                self.server_name = Some(name);
            }
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    // The alert, if the socket takes it now.
                    let _ = self.poll_send(cx);
                    return Poll::Ready(Err(e));
                }
            };
            match step {
                Step::Progress => {}
                Step::NeedInput => {
                    ready!(self.poll_send(cx))?;
                    if ready!(self.poll_receive(cx))? == 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "tls handshake eof",
                        )));
                    }
                }
                Step::Writable(_) => {
                    ready!(self.poll_send(cx))?;
                    self.release_idle_buffers();
                    return Poll::Ready(Ok(()));
                }
                Step::Closed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            }
        }
    }

    /// Hands what has been received to rustls once and deals with what it asks for:
    /// decrypted data goes to `read` while it has room and to `plaintext` after, encoded
    /// handshake data to `outgoing`, and `write` is encrypted when rustls allows it.
    fn step(&mut self, write: Write<'_, '_>, read: Option<&mut ReadBuf<'_>>) -> io::Result<Step> {
        if let Some(failed) = &self.failed {
            return Err(tls_error(failed.clone()));
        }
        let UnbufferedStatus { mut discard, state } = self
            .conn
            .process_tls_records(&mut self.incoming[self.processed..]);
        let step = match state {
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                take_records(&mut traffic, &mut self.plaintext, read, &mut discard)
            }
            Ok(ConnectionState::EncodeTlsData(mut data)) => self
                .outgoing
                .append(4096, |out| data.encode(out), encode_required)
                .map(|()| Step::Progress)
                .map_err(|e| rustls::Error::General(e.to_string())),
            // The encoded bytes are in `outgoing`: written before the handshake waits for the
            // peer, and after it by the next write or flush.
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                Ok(Step::Progress)
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(Step::NeedInput),
            Ok(ConnectionState::WriteTraffic(mut traffic)) => match write {
                Write::Nothing => Ok(Step::Writable(0)),
                Write::Data(slices) => {
                    encrypt_slices(&mut traffic, slices, &mut self.outgoing).map(Step::Writable)
                }
                Write::CloseNotify => self
                    .outgoing
                    .append(64, |out| traffic.queue_close_notify(out), encrypt_required)
                    .map(|()| {
                        self.write_closed = true;
                        Step::Writable(0)
                    })
                    .map_err(|e| rustls::Error::General(e.to_string())),
            },
            Ok(ConnectionState::PeerClosed) => {
                self.read_closed = true;
                Ok(Step::Progress)
            }
            Ok(ConnectionState::Closed) => {
                self.read_closed = true;
                Ok(Step::Closed)
            }
            // Not offered (`max_early_data_size` is 0 unless the configuration sets it);
            // delivered in order like any other data if it is.
            Ok(ConnectionState::ReadEarlyData(mut early)) => {
                take_records(&mut early, &mut self.plaintext, read, &mut discard)
            }
            Ok(other) => Err(rustls::Error::General(format!(
                "unexpected TLS state {other:?}"
            ))),
            Err(e) => Err(e),
        };
        self.processed += discard;
        step.map_err(|e| self.fail(e))
    }

    /// Records the first error, with the alert rustls queued for the peer encoded into
    /// `outgoing` (sent by the next write, flush or shutdown, or at once in the handshake).
    fn fail(&mut self, error: rustls::Error) -> io::Error {
        if self.failed.is_none() {
            self.failed = Some(error.clone());
            self.encode_alert();
        }
        tls_error(error)
    }

    /// After an error, the alert rustls queued for the peer, into `outgoing`. One call only:
    /// the alert comes first, before rustls reads records again, and a second look at the bad
    /// record would fail again (a second fatal alert). The bytes passed are the real ones,
    /// from where the failed call left off: rustls' handshake joiner keeps positions in them.
    fn encode_alert(&mut self) {
        let UnbufferedStatus { discard, state } = self
            .conn
            .process_tls_records(&mut self.incoming[self.processed..]);
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = state {
            let _ = self
                .outgoing
                .append(64, |out| data.encode(out), encode_required);
        }
        self.processed += discard;
    }

    /// Reads from the socket into `incoming`: the number of bytes read, 0 at its end. Waiting
    /// for the peer with nothing left to send, the connection is idle: its buffers are freed.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.incoming.drain(..self.processed);
        self.processed = 0;
        self.incoming.reserve(self.read_room);
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.incoming);
        match read {
            Poll::Ready(Ok(n)) => self.read_room = (2 * n).clamp(MIN_READ_ROOM, READ_ROOM),
            Poll::Pending => self.release_idle_buffers(),
            Poll::Ready(Err(_)) => {}
        }
        read
    }

    fn release_idle_buffers(&mut self) {
        if self.processed == self.incoming.len() {
            self.incoming = Vec::new();
            self.processed = 0;
        }
        if self.plaintext.is_empty() {
            self.plaintext = Vec::new();
        }
        self.outgoing.release();
    }

    /// Writes `outgoing` to the socket until it is all written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.unsent().is_empty() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, self.outgoing.unsent()))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.outgoing.advance(n),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Encrypts `slices` (at most [`WRITE_CHUNK`] of them) once everything already encrypted
    /// is written: the number of bytes taken.
    fn poll_encrypt(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_send(cx))?;
        if self.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        loop {
            match self.step(Write::Data(slices), None) {
                Ok(Step::Progress) => {}
                Ok(Step::Writable(n)) => {
                    // Written now if the socket takes it; otherwise by the next write or
                    // flush, which wait for it.
                    if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Step::NeedInput | Step::Closed) => {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
                }
                Err(e) => {
                    let _ = self.poll_send(cx);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably. Reading or writing it directly breaks the TLS session.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// rustls' view of the connection: the negotiated protocol version, cipher suite, ALPN
    /// protocol, the client's certificates.
    pub fn connection(&self) -> &UnbufferedServerConnection {
        &self.conn
    }

    /// The protocol agreed by ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The name the client asked for (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The client's certificate chain, when the configuration asked for one.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ServerTlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        loop {
            if this.taken < this.plaintext.len() {
                let now = (this.plaintext.len() - this.taken).min(buf.remaining());
                buf.put_slice(&this.plaintext[this.taken..this.taken + now]);
                this.taken += now;
                if this.taken == this.plaintext.len() {
                    // Kept for the next record that outgrows the reader's buffer (the driver
                    // reads 8 KiB at first, a record holds up to 16); freed when idle.
                    this.plaintext.clear();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_closed || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let step = match this.step(Write::Nothing, Some(buf)) {
                Ok(step) => step,
                // What this call read first is handed over; the error comes with the next
                // call. The alert goes out with the next write, flush or shutdown.
                Err(_) if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            };
            match step {
                Step::Progress => {}
                Step::Closed => return Poll::Ready(Ok(())),
                Step::NeedInput | Step::Writable(_) => {
                    // Everything received is processed. What rustls has to send (an answer
                    // to a key update goes with the next record we encrypt) waits for the next
                    // write, flush or shutdown: a read that wrote would take the socket's
                    // write wake-up from a writer in another task.
                    if buf.filled().len() > start {
                        return Poll::Ready(Ok(()));
                    }
                    if ready!(this.poll_receive(cx))? == 0 {
                        // The buffered API's answer too: data may have been cut off.
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "peer closed connection without sending TLS close_notify",
                        )));
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ServerTlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.get_mut().poll_encrypt(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        self.get_mut().poll_encrypt(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        // The writer is done for now: a connection that only sends keeps no buffer between
        // its messages.
        this.outgoing.release();
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while !this.write_closed && this.failed.is_none() {
            match this.step(Write::CloseNotify, None) {
                Ok(Step::Progress) => {}
                Ok(Step::Writable(_)) => {}
                // Closed already, or never open: nothing to announce.
                Ok(Step::NeedInput | Step::Closed) => this.write_closed = true,
                Err(_) => this.write_closed = true,
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
impl<S> ServerTlsStream<S> {
    /// Bytes of buffer the stream holds (capacity): 0 when idle.
    pub(crate) fn buffers_held(&self) -> usize {
        self.incoming.capacity() + self.plaintext.capacity() + self.outgoing.buf.capacity()
    }
}
