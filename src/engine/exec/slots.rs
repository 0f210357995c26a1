//! A counting semaphore for ffmpeg processes that wakes the lowest priority value first,
//! with one gate per workflow: a closed gate (a schedule window ended) holds back that
//! workflow's waiters while the others go on.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Lower runs first: (job sequence, rung rank, chunk).
pub type Priority = (u64, u32, u32);

pub struct Slots {
    state: Mutex<SlotState>,
}

struct Waiter {
    gate: Arc<str>,
    tx: oneshot::Sender<()>,
}

struct SlotState {
    free: usize,
    seq: u64,
    closed: HashSet<Arc<str>>,
    /// (priority, arrival) → waiter; BTreeMap order is the wake-up order.
    waiting: BTreeMap<(Priority, u64), Waiter>,
}

/// Holding one means one ffmpeg may run; dropping it wakes the next waiter.
pub struct SlotGuard {
    slots: Arc<Slots>,
}

impl Slots {
    pub fn new(count: usize) -> Arc<Slots> {
        Arc::new(Slots {
            state: Mutex::new(SlotState {
                free: count.max(1),
                seq: 0,
                closed: HashSet::new(),
                waiting: BTreeMap::new(),
            }),
        })
    }

    /// Waits for a slot for `gate`'s work. Dropping the future gives up its place.
    pub async fn acquire(self: &Arc<Self>, priority: Priority, gate: &Arc<str>) -> SlotGuard {
        let rx = {
            let Ok(mut st) = self.state.lock() else {
                return SlotGuard {
                    slots: self.clone(),
                };
            };
            if !st.closed.contains(gate) && st.free > 0 && st.waiting.is_empty() {
                st.free -= 1;
                return SlotGuard {
                    slots: self.clone(),
                };
            }
            let (tx, rx) = oneshot::channel();
            st.seq += 1;
            let seq = st.seq;
            st.waiting.insert(
                (priority, seq),
                Waiter {
                    gate: gate.clone(),
                    tx,
                },
            );
            Self::hand_out(&mut st);
            rx
        };
        let mut pending = PendingSlot {
            rx: Some(rx),
            slots: self.clone(),
        };
        if let Some(rx) = pending.rx.as_mut() {
            // The sender is only dropped after a slot was handed over; either way we hold one now.
            let _ = rx.await;
        }
        pending.rx = None;
        SlotGuard {
            slots: self.clone(),
        }
    }

    fn release(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.free += 1;
        Self::hand_out(&mut st);
    }

    /// Gives free slots to the best waiters whose gate is open.
    fn hand_out(st: &mut SlotState) {
        while st.free > 0 {
            let next = st
                .waiting
                .iter()
                .find(|(_, w)| !st.closed.contains(&w.gate))
                .map(|(k, _)| *k);
            let Some(key) = next else { return };
            let Some(w) = st.waiting.remove(&key) else {
                return;
            };
            if w.tx.send(()).is_ok() {
                st.free -= 1;
            }
        }
    }

    /// Closed: no new ffmpeg of this gate starts; running ones keep their slots.
    pub fn set_gate(&self, gate: &str, open: bool) {
        if let Ok(mut st) = self.state.lock() {
            if open {
                st.closed.remove(gate);
            } else {
                st.closed.insert(Arc::from(gate));
            }
            Self::hand_out(&mut st);
        }
    }
}

/// A waiter dropped (cancelled) just after being granted a slot must give it back.
struct PendingSlot {
    rx: Option<oneshot::Receiver<()>>,
    slots: Arc<Slots>,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.slots.release();
            }
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn slots_cap_concurrency_and_wake_by_priority() {
        let slots = Slots::new(1);
        let gate: Arc<str> = Arc::from("w");
        let first = slots.acquire((0, 0, 0), &gate).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for p in [5u32, 1, 3] {
            let (s, o, g) = (slots.clone(), order.clone(), gate.clone());
            handles.push(tokio::spawn(async move {
                let _g = s.acquire((0, p, 0), &g).await;
                if let Ok(mut o) = o.lock() {
                    o.push(p);
                }
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        for h in handles {
            let _ = h.await;
        }
        let got = order.lock().map(|o| o.clone()).unwrap_or_default();
        assert_eq!(got, [1, 3, 5]);
    }

    #[tokio::test]
    async fn a_closed_gate_holds_back_only_its_own_work() {
        let slots = Slots::new(1);
        let (night, day): (Arc<str>, Arc<str>) = (Arc::from("night"), Arc::from("day"));
        slots.set_gate("night", false);
        // The night job asks first and has the better priority, but its gate is closed.
        let s = slots.clone();
        let n = night.clone();
        let waiting = tokio::spawn(async move { s.acquire((0, 0, 0), &n).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got_day =
            tokio::time::timeout(Duration::from_millis(500), slots.acquire((9, 9, 9), &day)).await;
        assert!(got_day.is_ok(), "the open workflow must not wait");
        assert!(!waiting.is_finished(), "the closed workflow must wait");
        drop(got_day);
        slots.set_gate("night", true);
        let night_slot = tokio::time::timeout(Duration::from_millis(500), waiting).await;
        assert!(
            matches!(night_slot, Ok(Ok(_))),
            "opening the gate lets it run"
        );
    }
}
