//! The browser side: the engine's ports implemented with browser APIs, and the JS API.
//!
//! Thin by design (ARCHITECTURE.md: "the engine never imports `web-sys`"): modules here convert types, wire
//! callbacks and implement traits; every decision about what to request when lives in
//! [`crate::engine`], where it is tested natively.
//!
//! - [`signer`]: the signing API over `fetch`.
//! - [`xhr`]: part PUTs over `XMLHttpRequest`, for upload progress.
//! - [`checksum`]: part checksums in a Web Worker.
//! - [`stream`]: a `ReadableStream` cut into parts, and where a part's bytes are (file or stream).
//! - [`convert`]: JS options in, JS objects and errors out.
//! - [`resume`]: resume records in IndexedDB, and file fingerprints.
//! - [`engine`]: the engine built with these ports, for `Uploader` and `UploadQueue` alike, and
//!   which files get a resume record.
//! - [`api`]: the exported `Uploader` class and its TypeScript types.
//! - [`queue`]: the exported `UploadQueue` and `QueueItem` classes and their TypeScript types.

mod api;
mod checksum;
mod convert;
mod engine;
mod queue;
mod resume;
mod signer;
mod stream;
mod xhr;

use futures::future::LocalBoxFuture;
use gloo_timers::future::TimeoutFuture;
use js_sys::Reflect;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::EventTarget;

use crate::engine::{Clock, Network, Watch};

/// Wall-clock time from `Date.now()` and timers from `setTimeout`: available in pages and
/// workers alike. The engine tolerates the small steps back a wall clock can take.
#[derive(Debug, Clone, Copy)]
struct BrowserClock;

/// The longest delay `setTimeout` takes; longer ones fire at once.
const MAX_TIMEOUT_MS: f64 = 2_147_483_647.0;

impl Clock for BrowserClock {
    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }

    fn sleep(&self, ms: f64) -> LocalBoxFuture<'static, ()> {
        // The timer is set now, so dropping an unpolled sleep still clears it.
        Box::pin(TimeoutFuture::new(ms.clamp(0.0, MAX_TIMEOUT_MS) as u32))
    }
}

/// `navigator.onLine` and the global `online`/`offline` events, listened to while it lives.
struct BrowserNetwork {
    watch: Watch,
    target: Option<EventTarget>,
    listener: Closure<dyn FnMut()>,
}

impl BrowserNetwork {
    fn new() -> Self {
        let watch = Watch::default();
        let notify = watch.clone();
        let listener = Closure::<dyn FnMut()>::new(move || notify.notify());
        let target = js_sys::global().dyn_into::<EventTarget>().ok();
        if let Some(target) = &target {
            for event in ["online", "offline"] {
                let _ = target
                    .add_event_listener_with_callback(event, listener.as_ref().unchecked_ref());
            }
        }
        Self {
            watch,
            target,
            listener,
        }
    }
}

impl Drop for BrowserNetwork {
    fn drop(&mut self) {
        if let Some(target) = &self.target {
            for event in ["online", "offline"] {
                let _ = target.remove_event_listener_with_callback(
                    event,
                    self.listener.as_ref().unchecked_ref(),
                );
            }
        }
    }
}

impl Network for BrowserNetwork {
    fn is_online(&self) -> bool {
        let global = js_sys::global();
        Reflect::get(&global, &JsValue::from_str("navigator"))
            .and_then(|n| Reflect::get(&n, &JsValue::from_str("onLine")))
            .ok()
            .and_then(|v| v.as_bool())
            // No navigator (not a browser): assume online and let the retry policy cope.
            .unwrap_or(true)
    }

    fn changed(&self) -> LocalBoxFuture<'static, ()> {
        Box::pin(self.watch.changed())
    }
}

/// Routes Rust panics to the console, where they are readable, instead of a bare "unreachable
/// executed". Installed by the first `Uploader`, so importing the module changes nothing global.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            web_sys::console::error_1(&format!("s3-direct panicked: {info}").into());
        }));
    });
}
