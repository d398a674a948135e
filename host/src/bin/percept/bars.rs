//! The library's progress drawn as indicatif bars, one per stage (hidden when stderr is not a
//! terminal).

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use percept::progress::Progress;

/// One bar at a time: a new stage replaces the last one's.
#[derive(Default)]
pub struct Bars(Mutex<Option<ProgressBar>>);

impl Bars {
    fn current(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for Bars {
    fn begin(&self, what: &str, len: u64) {
        let mut cur = self.current();
        if let Some(b) = cur.take() {
            b.finish_and_clear();
        }
        let b = if len == 0 {
            let b = ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        } else {
            ProgressBar::new(len)
        };
        b.set_style(style(len == 0));
        b.set_message(what.to_string());
        *cur = Some(b);
    }

    fn set_len(&self, len: u64) {
        if let Some(b) = &*self.current() {
            b.disable_steady_tick();
            b.set_style(style(false));
            b.set_length(len);
        }
    }

    fn inc(&self, n: u64) {
        if let Some(b) = &*self.current() {
            b.inc(n);
        }
    }

    fn done(&self) {
        if let Some(b) = self.current().take() {
            b.finish_and_clear();
        }
    }
}

fn style(spinner: bool) -> ProgressStyle {
    let t = if spinner { "{spinner} {msg:>12} {elapsed}" } else { "{msg:>12} [{bar:30}] {pos}/{len} {elapsed}" };
    ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar())
}
