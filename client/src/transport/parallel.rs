//! Bounded parallel work on plain std threads (no async runtime in the client).
//!
//! [`map_bounded`] runs a closure over a list of jobs with at most `workers` threads
//! and returns the results in input order. Downloads use it so that fetching 50 index
//! docs opens at most `workers` connections at a time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Applies `work` to every job with at most `workers` threads; results keep the
/// order of `jobs`. `workers == 0` is treated as 1.
pub fn map_bounded<J, R, F>(jobs: &[J], workers: usize, work: F) -> Vec<R>
where
    J: Sync,
    R: Send,
    F: Fn(&J) -> R + Sync,
{
    let workers = workers.clamp(1, jobs.len().max(1));
    if workers == 1 {
        return jobs.iter().map(&work).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else { break };
                    let result = work(job);
                    if let Ok(mut slots) = results.lock() {
                        slots[index] = Some(result);
                    }
                }
            });
        }
    });
    let slots = match results.into_inner() {
        Ok(slots) => slots,
        Err(poisoned) => poisoned.into_inner(),
    };
    // Every slot was filled: each index below jobs.len() was claimed by exactly one
    // worker, and a panicking worker propagates out of `scope`.
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn keeps_input_order_and_never_exceeds_the_worker_bound() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let jobs: Vec<u32> = (0..40).collect();
        let out = map_bounded(&jobs, 4, |j| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            j * 2
        });
        assert_eq!(out, jobs.iter().map(|j| j * 2).collect::<Vec<_>>());
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=4).contains(&peak), "peak {peak}");
    }
}
