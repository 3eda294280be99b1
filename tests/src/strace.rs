//! Durability barriers read from an `strace -f -ttt -T` log, placed against the
//! requests a fault server answered: which barriers the critical path waits for (no
//! request in flight while they run) and which overlap the network.
//!
//! The lifecycle bench runs its cold installs under `strace` with this (see
//! `TRELLIS_BENCH_STRACE` there); the counts and durations depend much less on the
//! machine's load than the wall time does.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The system calls counted as barriers (and the renames that publish what they flush),
/// as an `strace -e trace=` list.
pub const TRACED: &str = "fsync,fdatasync,syncfs,sync,sync_file_range";

/// One barrier call: when it started (seconds since the epoch), how long it took, the
/// call and its argument as `strace -y` prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct Barrier {
    /// Start, in seconds since the Unix epoch.
    pub start: f64,
    /// How long the call took.
    pub duration: f64,
    /// `fsync`, `syncfs`, ...
    pub call: String,
    /// The first argument as printed (`3</tmp/…/state.json>`).
    pub argument: String,
}

/// Parses an `strace -f -ttt -T -y` log (one line per call, `<pid> <time> call(args) =
/// ret <duration>`, with `<unfinished ...>` / `<... call resumed>` pairs when threads
/// interleave) into the barrier calls it records, in start order.
pub fn parse(log: &str) -> Vec<Barrier> {
    let mut pending: HashMap<&str, (f64, String, String)> = HashMap::new();
    let mut barriers = Vec::new();
    for line in log.lines() {
        // strace pads the pid column to five characters ("5944  1796240525.312865 ..."),
        // so the fields are split on runs of spaces.
        let Some((pid, rest)) = line.trim_start().split_once(' ') else { continue };
        let Some((time, rest)) = rest.trim_start().split_once(' ') else { continue };
        let Ok(time) = time.parse::<f64>() else { continue };
        let duration = || {
            let open = rest.rfind('<')?;
            rest[open + 1..].trim_end().trim_end_matches('>').parse::<f64>().ok()
        };
        if rest.starts_with("<... ") {
            let Some((start, call, argument)) = pending.remove(pid) else { continue };
            if let Some(duration) = duration() {
                barriers.push(Barrier { start, duration, call, argument });
            }
            continue;
        }
        let Some((call, args)) = rest.split_once('(') else { continue };
        if !TRACED.split(',').any(|c| c == call) {
            continue;
        }
        let unfinished = args.strip_suffix(" <unfinished ...>");
        let argument = unfinished.unwrap_or(args).split([',', ')']).next().unwrap_or_default().to_owned();
        if unfinished.is_some() {
            pending.insert(pid, (time, call.to_owned(), argument));
        } else if let Some(duration) = duration() {
            barriers.push(Barrier { start: time, duration, call: call.to_owned(), argument });
        }
    }
    barriers.sort_by(|a, b| a.start.total_cmp(&b.start));
    barriers
}

/// Converts `Instant`s to seconds since the epoch, from one moment read on both clocks.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    instant: Instant,
    epoch: f64,
}

impl Clock {
    /// Now, on both clocks.
    pub fn now() -> Self {
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
        Self { instant: Instant::now(), epoch }
    }

    /// The moment read, on the monotonic clock.
    pub fn instant(&self) -> Instant {
        self.instant
    }

    /// `at` in seconds since the epoch.
    pub fn epoch(&self, at: Instant) -> f64 {
        if at >= self.instant {
            self.epoch + (at - self.instant).as_secs_f64()
        } else {
            self.epoch - (self.instant - at).as_secs_f64()
        }
    }
}

/// The barriers of one run against its requests' spans.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// Barrier calls.
    pub count: usize,
    /// Their summed duration, seconds.
    pub total: f64,
    /// Barriers that ran (mostly) while no request was in flight: the critical path waits.
    pub critical_count: usize,
    /// The summed time of barriers during which no request was in flight, seconds.
    pub critical: f64,
    /// Of that, after the last answer was written.
    pub after_last_answer: f64,
    /// Barriers (count) after the last answer.
    pub after_last_answer_count: usize,
}

/// Places `barriers` against `spans` (arrival and answer of each request, seconds since
/// the epoch): the time each barrier ran with no request in flight.
pub fn place(barriers: &[Barrier], spans: &[(f64, f64)]) -> Placement {
    // The union of the in-flight intervals.
    let mut sorted: Vec<(f64, f64)> = spans.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut busy: Vec<(f64, f64)> = Vec::new();
    for (start, end) in sorted {
        match busy.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => busy.push((start, end)),
        }
    }
    let last_answer = busy.last().map_or(f64::NEG_INFINITY, |b| b.1);
    let mut placement = Placement::default();
    for barrier in barriers {
        let (start, end) = (barrier.start, barrier.start + barrier.duration);
        let overlap: f64 = busy.iter().map(|&(s, e)| (end.min(e) - start.max(s)).max(0.0)).sum();
        let idle = (barrier.duration - overlap).max(0.0);
        placement.count += 1;
        placement.total += barrier.duration;
        placement.critical += idle;
        if idle * 2.0 > barrier.duration {
            placement.critical_count += 1;
        }
        if start >= last_answer {
            placement.after_last_answer += barrier.duration;
            placement.after_last_answer_count += 1;
        }
    }
    placement
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_interleaved_calls_and_places_them_against_requests() {
        let log = "\
10 100.000000 fsync(3</d/state.json>) = 0 <0.010000>
11 100.020000 syncfs(4</d/plugins> <unfinished ...>
10 100.021000 fsync(5</d/x>) = 0 <0.001000>
11 100.050000 <... syncfs resumed>) = 0 <0.030000>
10 100.060000 openat(AT_FDCWD, \"/d\", O_RDONLY) = 3 <0.000010>
";
        let barriers = parse(log);
        assert_eq!(barriers.len(), 3);
        // A pid shorter than five digits is padded with spaces.
        let padded = parse("5944  100.000000 fsync(3</d/state.json>) = 0 <0.010000>\n");
        assert_eq!(padded.len(), 1, "{padded:?}");
        assert_eq!((padded[0].call.as_str(), padded[0].start), ("fsync", 100.0));
        assert_eq!((barriers[1].call.as_str(), barriers[1].argument.as_str()), ("syncfs", "4</d/plugins>"));
        assert!((barriers[1].duration - 0.03).abs() < 1e-9);
        // A request in flight from 100.015 to 100.035: the syncfs overlaps it for 15 of
        // its 30 ms; the first fsync ran before any request, the second during one.
        let placement = place(&barriers, &[(100.015, 100.035)]);
        assert_eq!(placement.count, 3);
        assert!((placement.total - 0.041).abs() < 1e-9);
        assert!((placement.critical - (0.010 + 0.015)).abs() < 1e-9, "{placement:?}");
        assert_eq!(placement.critical_count, 1);
        assert_eq!(placement.after_last_answer_count, 0);
    }
}
