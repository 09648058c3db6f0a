//! A job's progress as its chat message shows it: the job's card with the phase, a bar
//! with percent, the rate and the time left, edited through the message's `Updater`.

use std::sync::{Arc, Mutex};

use super::{ChatMessage, Updater};
use crate::card::Card;

/// A progress sink that renders job progress into an `Updater`'s message: the job's
/// card with the phase, a bar with percent, the rate and the time left added.
pub struct ChatProgress {
    card: Card,
    updater: Arc<Updater>,
    state: Mutex<(String, Option<u64>, u64, std::time::Instant)>,
}

impl ChatProgress {
    pub fn new(card: Card, updater: Arc<Updater>) -> ChatProgress {
        ChatProgress {
            card,
            updater,
            state: Mutex::new((String::new(), None, 0, std::time::Instant::now())),
        }
    }

    fn render(&self) {
        let (phase, total, done, started) = self.state.lock().unwrap().clone();
        let line = progress_line(&phase, done, total, started.elapsed().as_secs_f64());
        self.updater
            .set(ChatMessage::card(self.card.clone().body(line)));
    }
}

/// "reading: ▓▓▓▓░░░░░░ 40% · 12.0 MiB of 30.0 MiB · 2.0 MiB/s · about 9.0 s left".
pub fn progress_line(phase: &str, done: u64, total: Option<u64>, seconds: f64) -> String {
    use crate::units::{human_bytes, human_duration};
    let secs = seconds.max(0.001);
    let mut line = phase.to_string();
    if done == 0 {
        return line;
    }
    let rate = done as f64 / secs;
    match total.filter(|t| *t > 0) {
        Some(t) => {
            let share = (done as f64 / t as f64).min(1.0);
            let filled = (share * 10.0).round() as usize;
            line.push_str(&format!(
                ": {}{} {:.0}% · {} of {} · {}/s",
                "▓".repeat(filled),
                "░".repeat(10 - filled),
                share * 100.0,
                human_bytes(done),
                human_bytes(t),
                human_bytes(rate as u64)
            ));
            if share < 1.0 {
                let left = t.saturating_sub(done) as f64 / rate.max(1.0);
                line.push_str(&format!(" · about {} left", human_duration(left)));
            }
        }
        None => line.push_str(&format!(
            ": {} · {}/s",
            human_bytes(done),
            human_bytes(rate as u64)
        )),
    }
    line
}

impl crate::progress::Progress for ChatProgress {
    fn phase(&self, name: &str) {
        *self.state.lock().unwrap() = (name.to_string(), None, 0, std::time::Instant::now());
        self.render();
    }
    fn total(&self, bytes: Option<u64>) {
        self.state.lock().unwrap().1 = bytes;
    }
    fn advance(&self, bytes: u64) {
        self.state.lock().unwrap().2 += bytes;
        self.render();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_bar_with_percent_rate_and_time_left() {
        assert_eq!(
            progress_line("reading", 40 << 20, Some(100 << 20), 10.0),
            "reading: ▓▓▓▓░░░░░░ 40% · 40.0 MiB of 100.0 MiB · 4.0 MiB/s · about 15 s left"
        );
        assert_eq!(
            progress_line("uploading", 3 << 20, None, 2.0),
            "uploading: 3.0 MiB · 1.5 MiB/s"
        );
        assert_eq!(progress_line("starting", 0, None, 0.0), "starting");
    }
}
