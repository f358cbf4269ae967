//! The health checker's threads: one scheduler and a bounded worker pool.
//!
//! The scheduler thread (`health-sched`) owns the `Schedule`. It hands due
//! probes to the workers (`health-worker-N`) over a channel, takes their
//! outcomes back over another, applies the rise/fall thresholds and sends a
//! `CheckResult` for every probe to the consumer. Between events it blocks
//! on its channels with a deadline equal to the next due probe, so it never
//! polls. Each worker owns one `Prober` (its ureq agents) for its lifetime.
//! A slow probe ties up one worker only; with every worker busy, due probes
//! wait in the job channel, and a target never has a second probe queued
//! while one is in flight (the `Schedule` guarantees that).

use super::probe::Prober;
use super::schedule::{CheckResult, Job, Schedule, Target, TargetId};
use crossbeam_channel::{Receiver, Select, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Worker threads when the caller has no opinion.
pub const DEFAULT_WORKERS: usize = 8;

enum Command {
    SetTargets(Vec<Target>),
    CheckNow,
    Stop,
}

struct Done {
    id: TargetId,
    epoch: u64,
    outcome: Result<Duration, String>,
}

/// Handle to the running checker threads.
pub struct HealthChecker {
    commands: Sender<Command>,
    scheduler: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

impl HealthChecker {
    /// Starts the scheduler and `workers` probe threads (at least one);
    /// results go to `results`. Starts with no targets.
    pub fn start(workers: usize, results: Sender<CheckResult>) -> HealthChecker {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32);
        HealthChecker::start_seeded(workers, seed, results)
    }

    /// `start` with a fixed seed for the interval jitter (tests).
    pub fn start_seeded(workers: usize, seed: u64, results: Sender<CheckResult>) -> HealthChecker {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        // Unbounded, yet bounded in practice: at most one job per target.
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        let workers: Vec<JoinHandle<()>> = (0..workers.max(1))
            .map(|n| {
                let jobs = job_rx.clone();
                let done = done_tx.clone();
                std::thread::Builder::new()
                    .name(format!("health-worker-{n}"))
                    .spawn(move || worker(jobs, done))
                    .expect("cannot spawn a health worker thread")
            })
            .collect();
        drop(done_tx);
        let scheduler = std::thread::Builder::new()
            .name("health-sched".into())
            .spawn(move || scheduler(Schedule::new(seed), cmd_rx, job_tx, done_rx, results))
            .expect("cannot spawn the health scheduler thread");
        HealthChecker {
            commands: cmd_tx,
            scheduler,
            workers,
        }
    }

    /// Replaces the target set (reload). Targets whose id and spec are
    /// unchanged keep their rise/fall state; the others start fresh.
    pub fn set_targets(&self, targets: Vec<Target>) {
        // Fails only when the scheduler is gone, and then so is the process.
        let _ = self.commands.send(Command::SetTargets(targets));
    }

    /// Probes every target now (targets in flight run again on completion).
    pub fn check_now(&self) {
        let _ = self.commands.send(Command::CheckNow);
    }

    /// Stops and joins every thread. Probes already running finish first,
    /// so this can take up to the longest probe timeout.
    pub fn stop(self) {
        let _ = self.commands.send(Command::Stop);
        // A panicked thread already reported itself through the panic hook.
        let _ = self.scheduler.join();
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn worker(jobs: Receiver<Job>, done: Sender<Done>) {
    let prober = Prober::new();
    for job in jobs.iter() {
        let outcome = prober.probe(&job.spec);
        log::debug!(
            "health probe {} (target {}): {:?}",
            job.spec,
            job.id,
            outcome
        );
        let sent = done.send(Done {
            id: job.id,
            epoch: job.epoch,
            outcome,
        });
        if sent.is_err() {
            break;
        }
    }
}

fn scheduler(
    mut schedule: Schedule,
    commands: Receiver<Command>,
    jobs: Sender<Job>,
    done: Receiver<Done>,
    results: Sender<CheckResult>,
) {
    loop {
        for job in schedule.take_due(Instant::now()) {
            if jobs.send(job).is_err() {
                panic!("health workers are gone");
            }
        }
        let mut sel = Select::new();
        let cmd_idx = sel.recv(&commands);
        let done_idx = sel.recv(&done);
        let op = match schedule.next_deadline() {
            Some(deadline) => match sel.select_deadline(deadline) {
                Ok(op) => op,
                Err(_) => continue, // a probe is due
            },
            None => sel.select(),
        };
        if op.index() == cmd_idx {
            match op.recv(&commands) {
                Ok(Command::SetTargets(targets)) => {
                    schedule.set_targets(targets, Instant::now());
                }
                Ok(Command::CheckNow) => schedule.check_now(Instant::now()),
                // Stop, or the handle was dropped.
                Ok(Command::Stop) | Err(_) => return,
            }
        } else if op.index() == done_idx {
            let Ok(d) = op.recv(&done) else {
                panic!("health workers are gone");
            };
            if let Some(result) = schedule.complete(d.id, d.epoch, d.outcome, SystemTime::now()) {
                // A consumer that went away is not our failure.
                let _ = results.send(result);
            }
        }
    }
}
