//! A queue of many uploads with one limit on part PUTs in flight across all of them.
//!
//! - Files start in the order they were added, at most `concurrency` at a time (paused files do
//!   not count), so a queue of 200 files does not ask the server for 200 uploads at once.
//! - Every PUT, of a part or of a whole small file, takes a slot from one [`Slots`] pool of
//!   `concurrency` slots, first come first served, each upload asking for one slot at a time. A
//!   big file therefore takes turns with the small files started after it instead of keeping
//!   every slot until its last part.
//! - Each file can be paused, resumed, cancelled and (after an error) retried; so can all of them.
//! - Progress is reported per file (the engine's [`Progress`]) and for the whole queue
//!   ([`QueueProgress`]), which reaches a fraction of 1 only when every file not cancelled is done.
//!
//! The queue only schedules. Running one file is the `launch` function's job (in the browser: an
//! [`Engine`](super::Engine) over `XMLHttpRequest` and the signing server; in tests: an engine over
//! scripted fakes), and starting a task is the `spawn` function's, so this runs natively too.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use futures::future::LocalBoxFuture;

use super::UploadResult;
use super::control::{Control, RunState, Watch};
use super::error::{Decimal, Error};
use super::ports::Clock;
use super::progress::{Phase, Progress, ProgressCallback, SpeedWindow};
use super::slots::Slots;
use super::upload::{DEFAULT_CONCURRENCY, DEFAULT_PROGRESS_INTERVAL_MS, MAX_CONCURRENCY};

/// Identifies an item of one queue: 1, 2, 3… in the order added.
pub type ItemId = u32;

/// Where an item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Waiting for its turn to start.
    Queued,
    /// Started: creating, signing or sending (or waiting for a PUT slot, or offline).
    Uploading,
    /// Paused by the caller, before or after it started.
    Paused,
    /// Every byte is stored; the store is assembling the object.
    Completing,
    Done,
    /// Failed; [`Queue::retry`] queues it again.
    Error,
    Cancelled,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Uploading => "uploading",
            Self::Paused => "paused",
            Self::Completing => "completing",
            Self::Done => "done",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the item has nothing more to do unless retried.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Error | Self::Cancelled)
    }
}

/// How many items are in which state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileCounts {
    pub total: u32,
    pub queued: u32,
    /// Uploading or completing.
    pub active: u32,
    pub paused: u32,
    pub done: u32,
    pub failed: u32,
    pub cancelled: u32,
}

/// Progress of the whole queue. Cancelled items count in neither bytes figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueProgress {
    /// Bytes handed to the network by items not cancelled (done items count whole).
    pub bytes_sent: u64,
    /// Size of all items not cancelled; `None` while a stream among them has not ended.
    pub bytes_total: Option<u64>,
    /// `bytes_sent / bytes_total`, and exactly 1 only once every item not cancelled is done.
    pub fraction: f64,
    /// Bytes per second over the last few seconds, all items together; 0 while unknown.
    pub speed: f64,
    /// Seconds until every item not cancelled is sent at the current speed; `None` while unknown.
    pub eta: Option<f64>,
    pub files: FileCounts,
}

/// What the queue tells its listener.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEvent {
    /// An item's state changed.
    ItemState { id: ItemId, state: ItemState },
    /// An item's progress (as throttled by its engine, about 10 a second, and at every stored part).
    ItemProgress { id: ItemId, progress: Progress },
    /// An item is done.
    ItemComplete { id: ItemId, result: UploadResult },
    /// An item failed (cancelling is not a failure: it ends in [`ItemState::Cancelled`]).
    ItemError { id: ItemId, error: Error },
    /// The queue's progress: at most every `progress_interval_ms` while bytes move, and at every
    /// item state change.
    Progress(QueueProgress),
    /// Nothing is queued, uploading or completing any more (paused items may remain).
    Idle,
}

/// How the queue runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueOptions {
    /// Most PUTs in flight at once across all items, and most items started at once.
    pub concurrency: usize,
    /// Least milliseconds between two queue progress reports caused by bytes moving.
    pub progress_interval_ms: f64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            progress_interval_ms: DEFAULT_PROGRESS_INTERVAL_MS,
        }
    }
}

impl QueueOptions {
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(Error::InvalidOptions(format!(
                "concurrency {} is outside 1..={MAX_CONCURRENCY}",
                self.concurrency
            )));
        }
        if self.progress_interval_ms.is_nan() || self.progress_interval_ms < 0.0 {
            return Err(Error::InvalidOptions(format!(
                "progress interval {} ms is not a number of milliseconds >= 0",
                Decimal(self.progress_interval_ms)
            )));
        }
        Ok(())
    }
}

/// Runs one item to its end: `(id, control, on_progress, slots)` to the upload's outcome. The
/// upload must take a slot from `slots` for each PUT (see [`Engine::with_slots`]).
///
/// [`Engine::with_slots`]: super::Engine::with_slots
pub type Launch = Box<
    dyn Fn(
        ItemId,
        Rc<Control>,
        ProgressCallback,
        Slots,
    ) -> LocalBoxFuture<'static, Result<UploadResult, Error>>,
>;

/// Starts a task that runs on its own (`wasm_bindgen_futures::spawn_local`, a test's pool).
pub type Spawn = Box<dyn Fn(LocalBoxFuture<'static, ()>)>;

/// Receives the queue's events. It may call back into the queue (add, pause, cancel…): events
/// that causes are delivered after the current one returns.
pub type Listener = Box<dyn FnMut(&QueueEvent)>;

/// The queue. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Queue(Rc<Shared>);

struct Shared {
    options: QueueOptions,
    slots: Slots,
    clock: Rc<dyn Clock>,
    launch: Launch,
    spawn: Spawn,
    listener: RefCell<Option<Listener>>,
    events: RefCell<VecDeque<QueueEvent>>,
    delivering: Cell<bool>,
    items: RefCell<Vec<Item>>,
    total: RefCell<Total>,
    /// Notified whenever the queue may have become idle.
    idle_watch: Watch,
    was_idle: Cell<bool>,
}

#[derive(Debug)]
struct Item {
    id: ItemId,
    /// `None` for a stream until it ends.
    size: Option<u64>,
    /// Added as a stream: cannot be retried (a stream is read once).
    stream: bool,
    state: ItemState,
    /// Whether an upload task runs for the current attempt.
    started: bool,
    /// Counts attempts; reports of an earlier attempt are ignored.
    attempt: u32,
    control: Rc<Control>,
    progress: Progress,
    result: Option<UploadResult>,
    error: Option<Error>,
}

/// The numbers behind [`QueueProgress`] that are not derived from the items.
#[derive(Debug, Default)]
struct Total {
    /// Every byte ever reported sent, by any attempt of any item: what speed measures.
    counted: u64,
    window: SpeedWindow,
    last: Option<QueueProgress>,
    last_emit_ms: Option<f64>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("options", &self.0.options)
            .field("slots", &self.0.slots)
            .field("items", &self.0.items.borrow().len())
            .finish_non_exhaustive()
    }
}

/// A snapshot of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemStatus {
    pub id: ItemId,
    /// `None` for a stream until it ends.
    pub size: Option<u64>,
    pub state: ItemState,
    pub progress: Progress,
    pub result: Option<UploadResult>,
    pub error: Option<Error>,
}

impl Queue {
    pub fn new(
        options: QueueOptions,
        clock: Rc<dyn Clock>,
        launch: Launch,
        spawn: Spawn,
    ) -> Result<Self, Error> {
        options.validate()?;
        Ok(Self(Rc::new(Shared {
            slots: Slots::new(options.concurrency),
            options,
            clock,
            launch,
            spawn,
            listener: RefCell::new(None),
            events: RefCell::new(VecDeque::new()),
            delivering: Cell::new(false),
            items: RefCell::new(Vec::new()),
            total: RefCell::new(Total::default()),
            idle_watch: Watch::default(),
            was_idle: Cell::new(true),
        })))
    }

    /// Sets the one listener of the queue's events.
    pub fn set_listener(&self, listener: Listener) {
        *self.0.listener.borrow_mut() = Some(listener);
    }

    /// The PUT slots every item's upload shares.
    pub fn slots(&self) -> &Slots {
        &self.0.slots
    }

    /// Adds a file of `size` bytes, or a stream (`None`: its size is known when it ends, and it
    /// cannot be retried, being read once); it starts when its turn comes. Returns its id.
    pub fn add(&self, size: Option<u64>) -> ItemId {
        let id = {
            let mut items = self.0.items.borrow_mut();
            // More than 4 billion items in one page is not a case to design for.
            let id = items.len() as ItemId + 1;
            items.push(Item {
                id,
                size,
                stream: size.is_none(),
                state: ItemState::Queued,
                started: false,
                attempt: 0,
                control: Control::new(),
                progress: initial_progress(size),
                result: None,
                error: None,
            });
            id
        };
        self.0.push(QueueEvent::ItemState {
            id,
            state: ItemState::Queued,
        });
        self.0.changed(true);
        id
    }

    /// A snapshot of item `id`.
    pub fn item(&self, id: ItemId) -> Option<ItemStatus> {
        self.0.with_item(id, |item| ItemStatus {
            id: item.id,
            size: item.size,
            state: item.state,
            progress: item.progress,
            result: item.result.clone(),
            error: item.error.clone(),
        })
    }

    /// Every item id, in the order added.
    pub fn ids(&self) -> Vec<ItemId> {
        self.0.items.borrow().iter().map(|i| i.id).collect()
    }

    /// The queue's progress now.
    pub fn progress(&self) -> QueueProgress {
        self.0.snapshot(self.0.clock.now_ms())
    }

    /// Pauses item `id`: a queued item is not started, a started one stops sending (its PUTs in
    /// flight are aborted; stored parts stay). No effect on a finished or completing item.
    pub fn pause(&self, id: ItemId) {
        let changed = self.0.with_item(id, |item| match item.state {
            ItemState::Queued => {
                item.state = ItemState::Paused;
                true
            }
            ItemState::Uploading => {
                item.control.pause();
                item.state = ItemState::Paused;
                true
            }
            _ => false,
        });
        if changed == Some(true) {
            self.0.push_state(id, ItemState::Paused);
            self.0.changed(true);
        }
    }

    /// Resumes a paused item: it continues (started) or waits for its turn again (not started).
    pub fn resume(&self, id: ItemId) {
        let state = self.0.with_item(id, |item| {
            if item.state != ItemState::Paused {
                return None;
            }
            item.state = if item.started {
                item.control.resume();
                ItemState::Uploading
            } else {
                ItemState::Queued
            };
            Some(item.state)
        });
        if let Some(Some(state)) = state {
            self.0.push_state(id, state);
            self.0.changed(true);
        }
    }

    /// Cancels item `id`: a started upload is aborted (its stored parts deleted) and ends in
    /// `Cancelled` when that is done; one not started is cancelled at once. No effect on a
    /// finished item.
    pub fn cancel(&self, id: ItemId) {
        let now = self.0.with_item(id, |item| {
            if item.state.is_final() {
                return false;
            }
            item.control.cancel();
            if item.started {
                return false;
            }
            item.state = ItemState::Cancelled;
            item.error = Some(Error::Aborted { cleanup: None });
            true
        });
        if now == Some(true) {
            self.0.push_state(id, ItemState::Cancelled);
            self.0.changed(true);
        }
    }

    /// Queues an item that failed again. A multipart upload kept for resuming continues with the
    /// parts the store holds (when the launch function resumes).
    pub fn retry(&self, id: ItemId) {
        let retried = self.0.with_item(id, |item| {
            if item.state != ItemState::Error || item.stream {
                return false;
            }
            item.state = ItemState::Queued;
            item.error = None;
            item.control = Control::new();
            item.progress = initial_progress(item.size);
            true
        });
        if retried == Some(true) {
            self.0.push_state(id, ItemState::Queued);
            self.0.changed(true);
        }
    }

    /// Pauses every item. Queued items first, so pausing a started one does not start them.
    pub fn pause_all(&self) {
        for id in self.ids_by_start(false) {
            self.pause(id);
        }
    }

    /// Resumes every paused item: started ones continue, the others queue in their order.
    pub fn resume_all(&self) {
        for id in self.ids_by_start(true) {
            self.resume(id);
        }
    }

    /// Cancels every item not finished. Queued items first, so none starts meanwhile.
    pub fn cancel_all(&self) {
        for id in self.ids_by_start(false) {
            self.cancel(id);
        }
    }

    /// Every id: the started items' first when `started_first`, else last; each group in order.
    fn ids_by_start(&self, started_first: bool) -> Vec<ItemId> {
        let items = self.0.items.borrow();
        let (started, waiting): (Vec<&Item>, Vec<&Item>) = items.iter().partition(|i| i.started);
        let (first, then) = if started_first {
            (started, waiting)
        } else {
            (waiting, started)
        };
        first.iter().chain(&then).map(|i| i.id).collect()
    }

    /// Whether nothing is queued, uploading or completing (paused items do not count).
    pub fn is_idle(&self) -> bool {
        self.0.is_idle()
    }

    /// Resolves once the queue is idle (at once if it is).
    pub fn idle(&self) -> impl Future<Output = ()> + 'static {
        let shared = self.0.clone();
        async move {
            loop {
                let changed = shared.idle_watch.changed();
                if shared.is_idle() {
                    return;
                }
                changed.await;
            }
        }
    }
}

fn initial_progress(size: Option<u64>) -> Progress {
    Progress {
        bytes_sent: 0,
        bytes_confirmed: 0,
        bytes_total: size,
        parts_done: 0,
        parts_total: size.map(|_| 0),
        speed: 0.0,
        eta: None,
        phase: Phase::Uploading,
    }
}

impl Shared {
    fn with_item<T>(&self, id: ItemId, f: impl FnOnce(&mut Item) -> T) -> Option<T> {
        let mut items = self.items.borrow_mut();
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        items.get_mut(index).map(f)
    }

    fn is_idle(&self) -> bool {
        !self.items.borrow().iter().any(|i| {
            matches!(
                i.state,
                ItemState::Queued | ItemState::Uploading | ItemState::Completing
            )
        })
    }

    fn push(&self, event: QueueEvent) {
        self.events.borrow_mut().push_back(event);
    }

    fn push_state(&self, id: ItemId, state: ItemState) {
        self.push(QueueEvent::ItemState { id, state });
    }

    /// After any change: start what may start, report progress, notice idleness, deliver.
    fn changed(self: &Rc<Self>, force_progress: bool) {
        self.pump();
        self.report(force_progress);
        let idle = self.is_idle();
        if idle && !self.was_idle.get() {
            self.push(QueueEvent::Idle);
        }
        self.was_idle.set(idle);
        if idle {
            self.idle_watch.notify();
        }
        self.deliver();
    }

    /// Starts queued items, in the order added, while fewer than `concurrency` run unpaused.
    fn pump(self: &Rc<Self>) {
        loop {
            let next = {
                let mut items = self.items.borrow_mut();
                let running = items
                    .iter()
                    .filter(|i| matches!(i.state, ItemState::Uploading | ItemState::Completing))
                    .count();
                if running >= self.options.concurrency {
                    return;
                }
                let Some(item) = items.iter_mut().find(|i| i.state == ItemState::Queued) else {
                    return;
                };
                item.state = ItemState::Uploading;
                item.started = true;
                item.attempt += 1;
                (item.id, item.attempt, item.control.clone())
            };
            let (id, attempt, control) = next;
            self.push_state(id, ItemState::Uploading);
            let on_progress: ProgressCallback = {
                let shared = Rc::downgrade(self);
                Box::new(move |p: &Progress| {
                    if let Some(shared) = shared.upgrade() {
                        shared.item_progress(id, attempt, *p);
                    }
                })
            };
            let upload = (self.launch)(id, control, on_progress, self.slots.clone());
            let shared = self.clone();
            (self.spawn)(Box::pin(async move {
                let outcome = upload.await;
                shared.finished(id, attempt, outcome);
            }));
        }
    }

    fn item_progress(self: &Rc<Self>, id: ItemId, attempt: u32, p: Progress) {
        let update = self.with_item(id, |item| {
            if item.attempt != attempt || !item.started || item.state.is_final() {
                return None;
            }
            let sent_before = item.progress.bytes_sent;
            let parts_before = item.progress.parts_done;
            item.progress = p;
            // A stream's size is known once it ends.
            item.size = item.size.or(p.bytes_total);
            let state = match (p.phase, item.state) {
                // Done once the upload's outcome arrives (`finished`).
                (Phase::Done, state) => state,
                (Phase::Completing, _) => ItemState::Completing,
                (Phase::Paused, _) => ItemState::Paused,
                // The caller's pause wins over a report sent before the engine saw it.
                (_, ItemState::Paused) if item.control.state() == RunState::Paused => {
                    ItemState::Paused
                }
                _ => ItemState::Uploading,
            };
            let state_changed = state != item.state;
            item.state = state;
            Some((
                p.bytes_sent.saturating_sub(sent_before),
                state_changed.then_some(state),
                p.parts_done != parts_before,
            ))
        });
        let Some(Some((delta, state, part_done))) = update else {
            return;
        };
        if delta > 0 {
            let now = self.clock.now_ms();
            let mut total = self.total.borrow_mut();
            total.counted += delta;
            let counted = total.counted;
            total.window.record(now, counted);
        }
        if let Some(state) = state {
            self.push_state(id, state);
        }
        self.push(QueueEvent::ItemProgress { id, progress: p });
        self.changed(state.is_some() || part_done);
    }

    fn finished(self: &Rc<Self>, id: ItemId, attempt: u32, outcome: Result<UploadResult, Error>) {
        let ended = self.with_item(id, |item| {
            if item.attempt != attempt {
                return None;
            }
            item.started = false;
            match outcome {
                Ok(result) => {
                    item.state = ItemState::Done;
                    item.size = Some(result.size);
                    item.progress.bytes_sent = result.size;
                    item.progress.bytes_confirmed = result.size;
                    item.progress.bytes_total = Some(result.size);
                    item.progress.phase = Phase::Done;
                    item.result = Some(result.clone());
                    Some((ItemState::Done, QueueEvent::ItemComplete { id, result }))
                }
                Err(error) => {
                    let state = if item.control.is_cancelled() {
                        ItemState::Cancelled
                    } else {
                        ItemState::Error
                    };
                    item.state = state;
                    item.error = Some(error.clone());
                    Some((state, QueueEvent::ItemError { id, error }))
                }
            }
        });
        let Some(Some((state, event))) = ended else {
            return;
        };
        self.push_state(id, state);
        if state != ItemState::Cancelled {
            self.push(event);
        }
        self.changed(true);
    }

    /// Queues a progress report if one is due (always when `force`), unless nothing changed.
    fn report(&self, force: bool) {
        let now = self.clock.now_ms();
        {
            let total = self.total.borrow();
            if !force
                && total
                    .last_emit_ms
                    .is_some_and(|t| now - t < self.options.progress_interval_ms)
            {
                return;
            }
        }
        let snapshot = self.snapshot(now);
        let mut total = self.total.borrow_mut();
        if total.last.is_some_and(|last| {
            last.bytes_sent == snapshot.bytes_sent
                && last.bytes_total == snapshot.bytes_total
                && last.files == snapshot.files
        }) {
            return;
        }
        total.last = Some(snapshot);
        total.last_emit_ms = Some(now);
        drop(total);
        self.push(QueueEvent::Progress(snapshot));
    }

    fn snapshot(&self, now: f64) -> QueueProgress {
        let items = self.items.borrow();
        let mut files = FileCounts::default();
        let (mut sent, mut size, mut known) = (0u64, 0u64, true);
        for item in items.iter() {
            files.total += 1;
            match item.state {
                ItemState::Queued => files.queued += 1,
                ItemState::Uploading | ItemState::Completing => files.active += 1,
                ItemState::Paused => files.paused += 1,
                ItemState::Done => files.done += 1,
                ItemState::Error => files.failed += 1,
                ItemState::Cancelled => files.cancelled += 1,
            }
            if item.state != ItemState::Cancelled {
                let (item_sent, item_size) = match item.size {
                    Some(s) if item.state == ItemState::Done => (s, s),
                    Some(s) => (item.progress.bytes_sent.min(s), s),
                    // A stream still being read: as far as it got, of a total not known yet.
                    None => {
                        known = false;
                        (item.progress.bytes_sent, item.progress.bytes_sent)
                    }
                };
                sent += item_sent;
                size += item_size;
            }
        }
        let all_done = files.done > 0 && files.done + files.cancelled == files.total;
        let fraction = if all_done {
            1.0
        } else if size == 0 {
            0.0
        } else {
            // An unfinished empty file must not make the queue look finished.
            (sent as f64 / size as f64).min(0.9999)
        };
        let speed = {
            let mut total = self.total.borrow_mut();
            let counted = total.counted;
            total.window.record(now, counted);
            total.window.speed()
        };
        let eta = if all_done {
            Some(0.0)
        } else if speed > 0.0 && known {
            Some((size - sent) as f64 / speed)
        } else {
            None
        };
        QueueProgress {
            bytes_sent: sent,
            bytes_total: known.then_some(size),
            fraction,
            speed,
            eta,
            files,
        }
    }

    /// Hands queued events to the listener, one at a time; events caused by the listener wait
    /// their turn instead of nesting.
    fn deliver(&self) {
        if self.delivering.replace(true) {
            return;
        }
        loop {
            let Some(event) = self.events.borrow_mut().pop_front() else {
                break;
            };
            let mut listener = self.listener.borrow_mut().take();
            if let Some(listener) = listener.as_mut() {
                listener(&event);
            }
            let mut slot = self.listener.borrow_mut();
            // A listener set from inside the callback replaces this one.
            if slot.is_none() {
                *slot = listener;
            }
        }
        self.delivering.set(false);
    }
}
