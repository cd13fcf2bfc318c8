//! The link between one server and its broker: the topics it wants, the publishes it sends,
//! the messages it delivers, and the reconnection loop.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, watch, Notify};

use super::{Broker, BrokerSession, BrokerStatus};
use crate::error::{Error, Result};
use crate::proto::connection::DataKind;
use crate::proto::message::Utf8Bytes;
use crate::proto::prepared::PreparedMessage;

/// Publishes waiting for the link's task; past this, publishing fails rather than queueing
/// without bound behind a slow broker.
const PUBLISH_QUEUE: usize = 4096;
/// Publishes sent to the broker in one batch (one pipeline, for Redis).
const PUBLISH_BATCH: usize = 256;
/// Messages from the broker taken together at most (this node's own, skipped, included).
const DELIVER_BATCH: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The first bytes of every message a server publishes: a tag and a version.
const ENVELOPE_TAG: [u8; 2] = [0xE1, 1];
const ENVELOPE_HEADER: usize = ENVELOPE_TAG.len() + 8 + 1;

/// Delivers a message from the broker to the local subscribers of a topic.
pub(crate) type Deliver = Box<dyn Fn(&str, &[PreparedMessage]) + Send + Sync>;

pub(crate) struct Link {
    /// Distinguishes this server's messages from the others'.
    node: u64,
    wanted: Mutex<Wanted>,
    changed: Notify,
    outgoing: mpsc::Sender<(Arc<str>, Bytes)>,
    status: watch::Sender<BrokerStatus>,
    stop: Notify,
}

#[derive(Default)]
struct Wanted {
    topics: HashSet<Arc<str>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    /// A link, and the task that runs it (to be spawned), delivering with `deliver`.
    pub(crate) fn start(
        broker: Arc<dyn Broker>,
        deliver: Deliver,
    ) -> (Arc<Link>, impl std::future::Future<Output = ()> + Send) {
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        let link = Arc::new(Link {
            node: rand::random(),
            wanted: Mutex::new(Wanted::default()),
            changed: Notify::new(),
            outgoing,
            status: watch::channel(BrokerStatus::Connecting).0,
            stop: Notify::new(),
        });
        let task = run(link.clone(), broker, deliver, queue);
        (link, task)
    }

    /// Takes (`true`) or drops the broker subscription to `topic`.
    pub(crate) fn want(&self, topic: &str, on: bool) {
        let mut wanted = lock(&self.wanted);
        if on {
            wanted.topics.insert(Arc::from(topic));
        } else {
            wanted.topics.remove(topic);
        }
        drop(wanted);
        self.changed.notify_one();
    }

    pub(crate) fn status(&self) -> BrokerStatus {
        self.status.borrow().clone()
    }

    pub(crate) fn watch(&self) -> watch::Receiver<BrokerStatus> {
        self.status.subscribe()
    }

    /// Ends the link's task (the server is gone).
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
    }

    /// Checks that `n` publishes can go to the broker now, and reserves their places in the
    /// queue: all or none.
    pub(crate) fn reserve(&self, n: usize) -> Result<mpsc::PermitIterator<'_, (Arc<str>, Bytes)>> {
        self.check_up()?;
        self.outgoing.try_reserve_many(n).map_err(queue_error)
    }

    fn check_up(&self) -> Result<()> {
        match &*self.status.borrow() {
            BrokerStatus::Up => Ok(()),
            BrokerStatus::Down { error } => {
                Err(Error::broker(format!("the broker is down: {error}")))
            }
            _ => Err(Error::broker("the broker is not connected yet")),
        }
    }

    /// The message as it crosses the broker; `None` for anything but text or binary.
    pub(crate) fn envelope(&self, message: &PreparedMessage) -> Option<Bytes> {
        let kind = message.kind()?;
        let mut out = BytesMut::with_capacity(ENVELOPE_HEADER + message.len());
        out.put_slice(&ENVELOPE_TAG);
        out.put_u64(self.node);
        out.put_u8(match kind {
            DataKind::Text => 0,
            DataKind::Binary => 1,
        });
        out.put_slice(message.payload());
        Some(out.freeze())
    }

    /// A message from the broker: `None` for one this server published, or one not made by a
    /// server of this library (or text that is not UTF-8).
    fn open(&self, mut envelope: Bytes) -> Option<PreparedMessage> {
        if envelope.len() < ENVELOPE_HEADER || envelope[..2] != ENVELOPE_TAG {
            return None;
        }
        let node = u64::from_be_bytes(envelope[2..10].try_into().ok()?);
        if node == self.node {
            return None;
        }
        let kind = envelope[10];
        let payload = envelope.split_off(ENVELOPE_HEADER);
        match kind {
            0 => Utf8Bytes::try_from(payload).ok().map(PreparedMessage::text),
            1 => Some(PreparedMessage::binary(payload)),
            _ => None,
        }
    }

    fn set_status(&self, status: BrokerStatus) {
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}

fn queue_error(e: mpsc::error::TrySendError<()>) -> Error {
    match e {
        mpsc::error::TrySendError::Full(()) => Error::broker("the broker's publish queue is full"),
        mpsc::error::TrySendError::Closed(()) => Error::broker("the broker link has stopped"),
    }
}

/// Connects, subscribes, relays; on any failure reports it and starts again after a backoff.
async fn run(
    link: Arc<Link>,
    broker: Arc<dyn Broker>,
    deliver: Deliver,
    mut queue: mpsc::Receiver<(Arc<str>, Bytes)>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let lost = tokio::select! {
            () = link.stop.notified() => return,
            lost = session(&link, &*broker, &deliver, &mut queue) => lost,
        };
        let up_before = link.status().is_up();
        link.set_status(BrokerStatus::Down { error: lost });
        // Publishes accepted before the link noticed are lost with the session.
        while queue.try_recv().is_ok() {}
        if up_before {
            backoff = BACKOFF_MIN;
        }
        // Jitter, so that many servers don't reconnect in step.
        let jitter = backoff.mul_f64(rand::random::<f64>() * 0.5);
        tokio::select! {
            () = link.stop.notified() => return,
            () = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// `first` and what else has already arrived, taken without waiting (at most
/// `DELIVER_BATCH` in all), opened (this node's own skipped); and whether the session was lost
/// meanwhile.
async fn take_ready(
    link: &Link,
    session: &mut dyn BrokerSession,
    first: (String, Bytes),
) -> (Vec<(String, PreparedMessage)>, bool) {
    let (topic, payload) = first;
    let mut received: Vec<_> = link.open(payload).map(|m| (topic, m)).into_iter().collect();
    for _ in 1..DELIVER_BATCH {
        let next = tokio::select! {
            biased;
            next = session.next_message() => next,
            () = std::future::ready(()) => break,
        };
        let Some((topic, payload)) = next else {
            return (received, true);
        };
        received.extend(link.open(payload).map(|m| (topic, m)));
    }
    (received, false)
}

/// Hands `received` to `deliver`, each run of messages for one topic at once.
fn deliver_in_runs(deliver: &Deliver, received: Vec<(String, PreparedMessage)>) {
    let mut run: Vec<PreparedMessage> = Vec::new();
    let mut received = received.into_iter().peekable();
    while let Some((topic, message)) = received.next() {
        run.push(message);
        if received.peek().map_or(true, |(next, _)| *next != topic) {
            deliver(&topic, &run);
            run.clear();
        }
    }
}

/// One session: answers why it ended.
async fn session(
    link: &Link,
    broker: &dyn Broker,
    deliver: &Deliver,
    queue: &mut mpsc::Receiver<(Arc<str>, Bytes)>,
) -> String {
    let mut session = match broker.connect().await {
        Ok(session) => session,
        Err(e) => return e.to_string(),
    };
    let mut subscribed: HashSet<Arc<str>> = HashSet::new();
    if let Err(e) = reconcile(link, &mut *session, &mut subscribed).await {
        return e;
    }
    link.set_status(BrokerStatus::Up);
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        tokio::select! {
            message = session.next_message() => match message {
                Some(first) => {
                    let (received, lost) = take_ready(link, &mut *session, first).await;
                    deliver_in_runs(deliver, received);
                    if lost {
                        return "connection lost".to_owned();
                    }
                }
                None => return "connection lost".to_owned(),
            },
            () = link.changed.notified() => {
                if let Err(e) = reconcile(link, &mut *session, &mut subscribed).await {
                    return e;
                }
            }
            n = queue.recv_many(&mut batch, PUBLISH_BATCH) => {
                if n == 0 {
                    return "the server stopped".to_owned();
                }
                let sent = session.publish(&batch).await;
                batch.clear();
                if let Err(e) = sent {
                    return e.to_string();
                }
            }
        }
    }
}

/// Subscribes to the topics wanted and not subscribed, and unsubscribes from the others.
async fn reconcile(
    link: &Link,
    session: &mut dyn BrokerSession,
    subscribed: &mut HashSet<Arc<str>>,
) -> std::result::Result<(), String> {
    loop {
        let wanted = lock(&link.wanted).topics.clone();
        let add: Vec<Arc<str>> = wanted.difference(subscribed).cloned().collect();
        let remove: Vec<Arc<str>> = subscribed.difference(&wanted).cloned().collect();
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        for topic in add {
            session.subscribe(&topic).await.map_err(|e| e.to_string())?;
            subscribed.insert(topic);
        }
        for topic in remove {
            session
                .unsubscribe(&topic)
                .await
                .map_err(|e| e.to_string())?;
            subscribed.remove(&topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::message::Message;

    #[test]
    fn messages_from_the_broker_go_out_in_runs_per_topic_in_order() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let seen = runs.clone();
        let deliver: Deliver = Box::new(move |topic, messages| {
            let texts: Vec<String> = messages
                .iter()
                .map(|m| String::from_utf8_lossy(m.payload()).into_owned())
                .collect();
            lock(&seen).push((topic.to_owned(), texts));
        });
        let received = [("a", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("a", "5")]
            .map(|(topic, text)| (topic.to_owned(), PreparedMessage::text(text)));
        deliver_in_runs(&deliver, received.to_vec());
        let runs = lock(&runs).clone();
        let expected =
            [("a", &["1", "2"][..]), ("b", &["3"]), ("a", &["4", "5"])].map(|(topic, texts)| {
                (
                    topic.to_owned(),
                    texts.iter().map(|t| t.to_string()).collect(),
                )
            });
        assert_eq!(runs, expected.to_vec());
    }

    struct Nowhere;
    impl Broker for Nowhere {
        fn connect(
            &self,
        ) -> super::super::BoxFuture<'_, Result<Box<dyn BrokerSession>, super::super::BrokerError>>
        {
            Box::pin(async { Err("nowhere".into()) })
        }
        fn describe(&self) -> String {
            "nowhere".into()
        }
    }

    #[tokio::test]
    async fn envelopes_round_trip_between_nodes_and_not_to_their_sender() {
        let (a, _) = Link::start(Arc::new(Nowhere), Box::new(|_, _| {}));
        let (b, _) = Link::start(Arc::new(Nowhere), Box::new(|_, _| {}));
        let text = a.envelope(&PreparedMessage::text("héllo")).unwrap();
        let opened = b.open(text.clone()).expect("another node's message");
        assert_eq!(opened.kind(), Some(DataKind::Text));
        assert_eq!(opened.payload(), "héllo".as_bytes());
        assert!(a.open(text).is_none(), "a node's own message comes back");
        let binary = b
            .open(a.envelope(&PreparedMessage::binary(vec![0xff, 0])).unwrap())
            .unwrap();
        assert_eq!(binary.kind(), Some(DataKind::Binary));
        // Not ours, or text that isn't UTF-8: ignored.
        assert!(b.open(Bytes::from_static(b"plain redis publish")).is_none());
        let mut bad = a
            .envelope(&PreparedMessage::binary(vec![0xff]))
            .unwrap()
            .to_vec();
        bad[10] = 0;
        assert!(b.open(Bytes::from(bad)).is_none());
        assert!(a.envelope(&Message::Ping(Bytes::new()).into()).is_none());
    }

    #[tokio::test]
    async fn publishing_fails_while_the_broker_is_unreachable() {
        let (link, task) = Link::start(Arc::new(Nowhere), Box::new(|_, _| {}));
        assert!(link.reserve(1).is_err(), "not connected yet");
        let running = tokio::spawn(task);
        let mut status = link.watch();
        status
            .wait_for(|s| matches!(s, BrokerStatus::Down { .. }))
            .await
            .unwrap();
        let error = link.reserve(1).err().unwrap();
        assert_eq!(error.kind(), crate::ErrorKind::Broker);
        assert!(error.to_string().contains("nowhere"), "{error}");
        link.stop();
        running.await.unwrap();
    }
}
