//! OpenGSLB change (see vendor/README.md): upstream counted idle threads
//! with an atomic that a woken thread only decremented once it had the
//! lock again, so two connections accepted in quick succession could both
//! be queued for the same idle thread; the second then waited until some
//! other connection ended (with long-lived connections, seconds). Here
//! the count of idle threads and the queue share one mutex, and a task is
//! queued only while there are more idle threads than queued tasks;
//! otherwise a new thread is started for it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

type Task = Box<dyn FnMut() + Send>;

struct State {
    // list of the tasks to be done by worker threads
    todo: VecDeque<Task>,
    // number of worker threads waiting for a task
    idle: usize,
    // number of worker threads running
    active: usize,
    // set when the pool is dropped: idle threads end
    closing: bool,
}

struct Sharing {
    state: Mutex<State>,
    // notified whenever a task is added to `todo`
    condvar: Condvar,
}

/// Minimum number of active threads.
const MIN_THREADS: usize = 4;

/// How long a thread beyond `MIN_THREADS` waits for a task before ending.
const IDLE_TIMEOUT: Duration = Duration::from_millis(5000);

impl Sharing {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TaskPool {
    pub fn new() -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                state: Mutex::new(State {
                    todo: VecDeque::new(),
                    idle: 0,
                    active: 0,
                    closing: false,
                }),
                condvar: Condvar::new(),
            }),
        };

        for _ in 0..MIN_THREADS {
            pool.add_thread(None)
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Task) {
        let mut state = self.sharing.lock();
        if state.idle > state.todo.len() {
            state.todo.push_back(code);
            self.sharing.condvar.notify_one();
        } else {
            drop(state);
            self.add_thread(Some(code));
        }
    }

    fn add_thread(&self, initial_fn: Option<Task>) {
        let sharing = self.sharing.clone();
        sharing.lock().active += 1;

        thread::spawn(move || {
            let sharing = sharing;

            if let Some(mut f) = initial_fn {
                f();
            }

            loop {
                let mut task = {
                    let mut state = sharing.lock();
                    loop {
                        if let Some(task) = state.todo.pop_front() {
                            break task;
                        }
                        if state.closing {
                            state.active -= 1;
                            return;
                        }
                        state.idle += 1;
                        let timed_out = if state.active <= MIN_THREADS {
                            state = sharing
                                .condvar
                                .wait(state)
                                .unwrap_or_else(PoisonError::into_inner);
                            false
                        } else {
                            let (s, res) = sharing
                                .condvar
                                .wait_timeout(state, IDLE_TIMEOUT)
                                .unwrap_or_else(PoisonError::into_inner);
                            state = s;
                            res.timed_out()
                        };
                        state.idle -= 1;
                        if timed_out && state.todo.is_empty() {
                            state.active -= 1;
                            return;
                        }
                    }
                };

                task();
            }
        });
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing.lock().closing = true;
        self.sharing.condvar.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Bug (upstream): with every thread busy but one, two tasks spawned
    /// before the idle thread woke were both queued for it, and the
    /// second waited until a busy thread finished.
    #[test]
    fn tasks_spawned_together_all_run_while_others_block() {
        let pool = TaskPool::new();
        let (release, hold) = mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let (started, runs) = mpsc::channel::<usize>();
        // Many more blocking tasks than MIN_THREADS, spawned back to back.
        let n = 40;
        for i in 0..n {
            let (hold, started) = (hold.clone(), started.clone());
            pool.spawn(Box::new(move || {
                started.send(i).unwrap();
                let _ = hold.lock().unwrap().recv();
            }));
        }
        let mut seen = vec![false; n];
        for _ in 0..n {
            let i = runs
                .recv_timeout(Duration::from_secs(30))
                .expect("every task starts while the others still block");
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
        drop(release);
    }
}
