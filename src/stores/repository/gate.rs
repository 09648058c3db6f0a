//! Backups and prunes of one repository store, kept apart: any number of backups at
//! once, or one prune alone. A prune that ran beside a backup would see the packs the
//! backup has written but not yet indexed as unreferenced, and delete them.

use std::sync::{Arc, Condvar, Mutex};

#[derive(Default)]
pub struct Gate {
    /// Backups being written, and whether a prune holds or waits for the gate.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

/// Held by a backup until it is published or abandoned.
pub struct WriterPass(Arc<Gate>);

/// Held by a prune while it runs.
pub struct PrunePass<'a>(&'a Gate);

impl Gate {
    /// Wait for any prune to end, then count one more backup.
    pub fn writer(self: &Arc<Self>) -> WriterPass {
        let mut state = self.state.lock().unwrap();
        while state.1 {
            state = self.changed.wait(state).unwrap();
        }
        state.0 += 1;
        WriterPass(self.clone())
    }

    /// Stop new backups from starting, then wait for those running to end.
    pub fn prune(&self) -> PrunePass<'_> {
        let mut state = self.state.lock().unwrap();
        while state.1 {
            state = self.changed.wait(state).unwrap();
        }
        state.1 = true;
        while state.0 > 0 {
            state = self.changed.wait(state).unwrap();
        }
        PrunePass(self)
    }
}

impl Drop for WriterPass {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().0 -= 1;
        self.0.changed.notify_all();
    }
}

impl Drop for PrunePass<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().1 = false;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_prune_waits_for_running_backups_and_holds_new_ones() {
        let gate = Arc::new(Gate::default());
        let backup = gate.writer();
        let pruned = Arc::new(AtomicBool::new(false));
        let (g, p) = (gate.clone(), pruned.clone());
        let prune = std::thread::spawn(move || {
            let _pass = g.prune();
            p.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!pruned.load(Ordering::SeqCst), "prune ran beside a backup");
        drop(backup);
        prune.join().unwrap();
        assert!(pruned.load(Ordering::SeqCst));
        // After the prune, backups start again.
        drop(gate.writer());
    }
}
