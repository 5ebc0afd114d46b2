//! The browser side: the engine's ports implemented with browser APIs, and the JS API.
//!
//! Thin by design (see DESIGN.md, "the engine is plain Rust"): modules here convert types, wire
//! callbacks and implement traits; every decision about what to request when lives in
//! [`crate::engine`], where it is tested natively.
//!
//! - [`signer`]: the signing API over `fetch` (gloo-net).
//! - [`xhr`]: part PUTs over `XMLHttpRequest`, for upload progress.
//! - [`convert`]: JS options in, JS objects and errors out.
//! - [`api`]: the exported `Uploader` class and its TypeScript types.

mod api;
mod convert;
mod signer;
mod xhr;

use crate::engine::Clock;

/// Wall-clock time from `Date.now()`: available in pages and workers alike. The engine tolerates
/// the small steps back a wall clock can take.
#[derive(Debug, Clone, Copy)]
struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
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
