//! Worker threads: each worker runs on an OS thread of its own, and when it ends, its thread
//! waits a while for the next worker instead of exiting.
//!
//! Creating a thread is most of what a spawn costs on Linux: the kernel maps its stack and
//! guard page, wasmtime sets up its signal stack on first use, and when the thread exits all
//! of it is unmapped again, which makes every other CPU flush its TLB. A thread that has run a
//! worker has done all that already. Parked threads cost their stack's touched pages and
//! nothing else; they exit after [`HostConfig::thread_keep_alive`](crate::HostConfig) with
//! nothing to run, and at most [`HostConfig::idle_threads`](crate::HostConfig) wait at once.
//!
//! A worker has a thread to itself while it runs and while it waits for its next task. When
//! it has waited long enough (`HostConfig::release_thread_after`) it gives the thread back
//! here, and its next task [`resume`](Threads::resume)s it on a parked thread or a new one:
//! threads are reused, never shared by two workers at once.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What a thread runs: one worker, from start to end.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A host's worker threads.
#[derive(Clone)]
pub(crate) struct Threads(Arc<IdleThreads>);

struct IdleThreads {
    state: Mutex<State>,
    ready: Condvar,
    keep_alive: Duration,
    max_idle: usize,
}

struct State {
    /// Jobs handed over, each to be taken by one of the `idle` threads.
    jobs: VecDeque<(String, Job)>,
    /// Threads waiting for a job.
    idle: usize,
}

impl Threads {
    pub(crate) fn new(keep_alive: Duration, max_idle: usize) -> Self {
        Threads(Arc::new(IdleThreads {
            state: Mutex::new(State { jobs: VecDeque::new(), idle: 0 }),
            ready: Condvar::new(),
            keep_alive,
            max_idle,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `job` on a thread named `name`: a parked one if there is one, else a new one.
    ///
    /// # Errors
    ///
    /// If a new thread is needed and the operating system refuses it; `job` is dropped then.
    pub(crate) fn run(&self, name: String, job: Job) -> std::io::Result<()> {
        let Some((name, job)) = self.hand_to_idle(name, job) else { return Ok(()) };
        let threads = self.clone();
        let named = name.clone();
        std::thread::Builder::new().name(name).spawn(move || threads.serve(job, named))?;
        Ok(())
    }

    /// Gives `job` to a parked thread that is not already promised one; gives it back if
    /// there is none.
    fn hand_to_idle(&self, name: String, job: Job) -> Option<(String, Job)> {
        let mut state = self.lock();
        if state.idle > state.jobs.len() {
            state.jobs.push_back((name, job));
            drop(state);
            self.0.ready.notify_one();
            return None;
        }
        Some((name, job))
    }

    /// Runs `job`, a worker that gave its thread back and has a task again, on a thread named
    /// `name`: a parked one if there is one, else a new one. Never fails: if the operating
    /// system refuses a new thread, the job waits for the next thread of this host that
    /// finishes what it runs (and a warning says so).
    pub(crate) fn resume(&self, name: String, job: Job) {
        let Some((name, job)) = self.hand_to_idle(name, job) else { return };
        // Held until it is known whether the new thread took the job.
        let job = Arc::new(Mutex::new(Some(job)));
        let given = job.clone();
        let threads = self.clone();
        let named = name.clone();
        let spawned = std::thread::Builder::new().name(name.clone()).spawn(move || {
            let job = given.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
            if let Some(job) = job {
                threads.serve(job, named);
            }
        });
        if let Err(error) = spawned {
            if let Some(job) = job.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
                tracing::warn!(worker = %name, %error, "no thread to resume a worker on; it waits for the next free one");
                self.lock().jobs.push_back((name, job));
                // A thread that parked meanwhile takes it now, not at the end of its keep-alive.
                self.0.ready.notify_one();
            }
        }
    }

    /// The body of a worker thread named `name`: its first job, then whatever comes while it
    /// waits.
    fn serve(&self, first: Job, mut name: String) {
        let mut job = first;
        loop {
            job();
            let Some((next_name, next)) = self.next_job() else { return };
            // Renamed only if the name changes: most spawns in a row name their threads alike
            // ("worker" and the component's location), and each rename is a system call.
            if next_name != name {
                set_thread_name(&next_name);
                name = next_name;
            }
            job = next;
        }
    }

    /// Waits up to the keep-alive for a job; `None` if none came (the thread exits then).
    fn next_job(&self) -> Option<(String, Job)> {
        let mut state = self.lock();
        if state.jobs.len() > state.idle {
            // More jobs than idle threads to take them: one waited for a thread (`resume`).
            return state.jobs.pop_front();
        }
        if state.idle >= self.0.max_idle {
            return None;
        }
        state.idle += 1;
        loop {
            if let Some(job) = state.jobs.pop_front() {
                state.idle -= 1;
                return Some(job);
            }
            let (guard, waited) =
                self.0.ready.wait_timeout(state, self.0.keep_alive).unwrap_or_else(|poisoned| poisoned.into_inner());
            state = guard;
            // Leave only if no job was promised to the idle threads (one may be on its way).
            if waited.timed_out() && state.jobs.is_empty() {
                state.idle -= 1;
                return None;
            }
        }
    }
}

/// Names the calling thread (what debuggers and `top -H` show), as a new thread would be.
fn set_thread_name(name: &str) {
    // Linux keeps 15 bytes and a NUL; cut at a character boundary.
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    if let Ok(name) = std::ffi::CString::new(&name[..end]) {
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call; PR_SET_NAME
        // only reads it.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// The calling thread's name as the operating system knows it.
    fn os_thread_name() -> String {
        let mut name = [0u8; 16];
        // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into `name`.
        unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        String::from_utf8_lossy(&name[..end]).into_owned()
    }

    #[test]
    fn a_thread_that_ran_a_job_runs_the_next_one_under_its_name() {
        let threads = Threads::new(Duration::from_secs(60), 4);
        let (tx, rx) = mpsc::channel();
        let mut seen = Vec::new();
        for name in ["one", "two", "two", "one"] {
            let tx = tx.clone();
            threads
                .run(name.into(), Box::new(move || tx.send((std::thread::current().id(), os_thread_name())).unwrap()))
                .unwrap();
            seen.push(rx.recv().unwrap());
            // The thread parks after its job; wait until it does, then hand over the next.
            let backoff = crossbeam_utils::Backoff::new();
            while threads.lock().idle == 0 {
                backoff.snooze();
            }
        }
        assert!(seen.iter().all(|(id, _)| *id == seen[0].0), "the parked thread ran every job");
        let names: Vec<_> = seen.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(names, ["one", "two", "two", "one"], "each job runs under its own name");
    }

    #[test]
    fn idle_threads_leave_after_the_keep_alive() {
        let threads = Threads::new(Duration::from_millis(1), 4);
        let (tx, rx) = mpsc::channel();
        threads.run("one".into(), Box::new(move || tx.send(()).unwrap())).unwrap();
        rx.recv().unwrap();
        let backoff = crossbeam_utils::Backoff::new();
        while Arc::strong_count(&threads.0) > 1 {
            backoff.snooze();
        }
        assert_eq!(threads.lock().idle, 0);
    }
}
