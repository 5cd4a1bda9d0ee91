//! How many threads a decode gets: all of `threads`, or one while the CPU is contended.
//!
//! llama.cpp's threads meet at a barrier after every operation of the graph (see
//! [`crate::openmp`] for how long they spin there). When another process holds a core, the
//! thread the others wait for is often not running: on this 2-core machine, with one busy
//! process beside bear-server, 300 tokens took 13 s on two threads, against 2.1 s on two when
//! the machine is idle and 3 s on one. So the batcher times its generating steps (a few tokens
//! each), now and then runs a few in the other mode, and keeps the faster: [`Tuner`] is that
//! choice, [`apply`] makes it for the next decode. Measured: 3.4 to 5.4 s with the busy process
//! beside it, 2.0 to 2.2 s once it ended.
//!
//! The serial mode sets OpenMP's max-active-levels to 0 on the decoding thread, so ggml's
//! `omp parallel` region runs on that thread alone (ggml takes the thread count OpenMP gives
//! it); llama-cpp-2 does not expose `llama_set_n_threads`.

#![allow(unsafe_code)]

use std::os::raw::c_int;

/// Steps of this many tokens or fewer are generating steps, the ones the tuner learns from;
/// larger ones read prompts and take whatever mode is current.
const SMALL_STEP: usize = 8;
/// Weight of a new step in its mode's running estimate.
const ALPHA: f64 = 0.5;
/// Steps a probe of the other mode lasts.
const PROBE: u32 = 3;
/// Steps between probes after a switch; doubled after each probe that loses, up to
/// [`MAX_INTERVAL`].
const MIN_INTERVAL: u32 = 64;
const MAX_INTERVAL: u32 = 512;
/// A probe whose steps took less than this share of its mode's earlier estimate found the
/// machine changed: the next probe comes after [`MIN_INTERVAL`] steps.
const CHANGED_BELOW: f64 = 0.5;
/// The other mode's estimate must be this much lower to switch.
const SWITCH_BELOW: f64 = 0.8;

/// How a decode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// On all the context's threads.
    Parallel,
    /// On the decoding thread alone.
    Serial,
}

impl Mode {
    fn other(self) -> Self {
        match self {
            Self::Parallel => Self::Serial,
            Self::Serial => Self::Parallel,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Chooses the mode of each decode from the measured times of earlier ones: a running mean
/// of each mode's step time (so a mode that stalls now and then is charged for its stalls),
/// a probe of the other mode every `interval` steps, a switch when it is clearly faster.
#[derive(Debug)]
pub(crate) struct Tuner {
    /// Tuning is off with one thread: both modes are the same.
    enabled: bool,
    current: Mode,
    estimate: [Option<f64>; 2],
    since_probe: u32,
    /// The current probe's steps so far, their total time and the estimate before it.
    probed: u32,
    probe_seconds: f64,
    before: Option<f64>,
    interval: u32,
    switches: u64,
}

impl Tuner {
    /// A tuner for a context of `threads` threads, starting parallel; `adapt` false keeps it
    /// parallel.
    pub(crate) fn new(threads: u32, adapt: bool) -> Self {
        Self {
            enabled: adapt && threads > 1,
            current: Mode::Parallel,
            estimate: [None; 2],
            since_probe: 0,
            probed: 0,
            probe_seconds: 0.0,
            before: None,
            interval: MIN_INTERVAL,
            switches: 0,
        }
    }

    /// The mode for the next decode.
    pub(crate) fn mode(&self) -> Mode {
        if self.enabled && self.since_probe >= self.interval {
            self.current.other()
        } else {
            self.current
        }
    }

    /// Records a decode of `tokens` tokens in `mode` that took `seconds`.
    pub(crate) fn record(&mut self, mode: Mode, tokens: usize, seconds: f64) {
        if !self.enabled || tokens > SMALL_STEP {
            return;
        }
        let e = &mut self.estimate[mode.index()];
        if mode != self.current && self.probed == 0 {
            self.before = *e;
        }
        *e = Some(e.map_or(seconds, |e| ALPHA * seconds + (1.0 - ALPHA) * e));
        if mode == self.current {
            self.since_probe += 1;
            return;
        }
        self.probed += 1;
        self.probe_seconds += seconds;
        if self.probed == PROBE {
            self.decide();
        }
    }

    /// Ends a probe: switches when the other mode is clearly faster.
    fn decide(&mut self) {
        let [now, other] = [self.current, self.current.other()].map(|m| self.estimate[m.index()]);
        if let (Some(now), Some(other)) = (now, other)
            && other < SWITCH_BELOW * now
        {
            self.current = self.current.other();
            self.interval = MIN_INTERVAL;
            self.switches += 1;
            tracing::debug!(mode = ?self.current, "decode threads changed");
        } else if self
            .before
            .is_some_and(|b| self.probe_seconds / f64::from(PROBE) < CHANGED_BELOW * b)
        {
            self.interval = MIN_INTERVAL;
        } else {
            self.interval = (self.interval * 2).min(MAX_INTERVAL);
        }
        self.since_probe = 0;
        self.probed = 0;
        self.probe_seconds = 0.0;
    }
}

unsafe extern "C" {
    /// OpenMP's runtime API (libgomp, which llama-cpp-sys-2 links for llama.cpp).
    fn omp_set_max_active_levels(max_levels: c_int);
}

/// Makes the calling thread's next decode run in `mode`.
pub(crate) fn apply(mode: Mode) {
    let levels = match mode {
        Mode::Parallel => 1,
        Mode::Serial => 0,
    };
    // SAFETY: a setter of one OpenMP internal control variable; it takes an int and touches
    // no memory of ours.
    unsafe { omp_set_max_active_levels(levels) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `n` small steps, each timed by `time(mode)`; returns the modes used.
    fn run(t: &mut Tuner, n: usize, mut time: impl FnMut(Mode) -> f64) -> Vec<Mode> {
        (0..n)
            .map(|_| {
                let m = t.mode();
                t.record(m, 1, time(m));
                m
            })
            .collect()
    }

    fn count(modes: &[Mode], m: Mode) -> usize {
        modes.iter().filter(|&&x| x == m).count()
    }

    #[test]
    fn an_idle_machine_stays_parallel_and_probes_ever_less() {
        let mut t = Tuner::new(2, true);
        let modes = run(&mut t, 5000, |m| match m {
            Mode::Parallel => 0.008,
            Mode::Serial => 0.012,
        });
        assert_eq!((t.mode(), t.switches), (Mode::Parallel, 0));
        // Probes back off to one every MAX_INTERVAL steps.
        let serial = count(&modes, Mode::Serial);
        assert!(serial <= 3 * 12, "{serial} serial steps");
        assert!(count(&modes[4000..], Mode::Serial) <= 2 * PROBE as usize);
    }

    #[test]
    fn contention_moves_to_serial_and_back_when_it_ends() {
        let mut t = Tuner::new(2, true);
        run(&mut t, 200, |m| match m {
            Mode::Parallel => 0.040,
            Mode::Serial => 0.012,
        });
        assert_eq!((t.mode(), t.switches), (Mode::Serial, 1));
        let modes = run(&mut t, 3000, |m| match m {
            Mode::Parallel => 0.008,
            Mode::Serial => 0.012,
        });
        assert_eq!((t.mode(), t.switches), (Mode::Parallel, 2));
        // Back within a few probes.
        assert!(
            count(&modes, Mode::Serial) < MAX_INTERVAL as usize,
            "{}",
            count(&modes, Mode::Serial)
        );
    }

    #[test]
    fn rare_stalls_count_by_what_they_cost() {
        // Parallel is fast but stalls one step in eight: its mean loses to serial.
        let mut t = Tuner::new(2, true);
        let (mut k, mut total) = (0u32, 0.0);
        run(&mut t, 3000, |m| {
            k += 1;
            let s = match m {
                Mode::Parallel if k.is_multiple_of(8) => 2.0,
                Mode::Parallel => 0.006,
                Mode::Serial => 0.012,
            };
            total += s;
            s
        });
        // All-parallel would take 760 s, all-serial 36 s. The tuner pays for probing parallel
        // again soon after a stall-free probe (what brings it back quickly when contention
        // ends): about 75 s here.
        assert!(total < 2.5 * 3000.0 * 0.012, "{total} s");
    }

    #[test]
    fn noise_within_the_margin_does_not_switch() {
        let mut t = Tuner::new(4, true);
        let mut k = 0u32;
        run(&mut t, 3000, |m| {
            k += 1;
            let jitter = if k.is_multiple_of(3) { 1.1 } else { 1.0 };
            match m {
                Mode::Parallel => 0.010 * jitter,
                Mode::Serial => 0.009,
            }
        });
        assert_eq!(t.switches, 0);
    }

    #[test]
    fn prompt_steps_one_thread_and_adapt_off_teach_nothing() {
        let mut t = Tuner::new(2, true);
        for _ in 0..500 {
            let m = t.mode();
            t.record(m, 512, if m == Mode::Parallel { 1.0 } else { 0.1 });
        }
        assert_eq!((t.mode(), t.switches), (Mode::Parallel, 0));
        let mut one = Tuner::new(1, true);
        run(
            &mut one,
            500,
            |m| if m == Mode::Parallel { 1.0 } else { 0.1 },
        );
        assert_eq!(one.switches, 0);
    }
}
