//! What the benchmarks share: the bundled guests (built on first use), a host, waiting for a
//! worker's answer, posting under back-pressure, and the native-threads baselines each wasm figure is compared with.

use std::sync::mpsc;

use wasm_workers::{Component, DropReason, Host, Message, WorkerEvent, WorkerHandle};

pub use guest_build::guests_dir;

/// Loads guest `name` on `host`.
pub fn load(host: &Host, name: &str) -> Component {
    host.load(guest_build::guest(name)).expect("the guest loads")
}

/// The next message from `worker`, blocking.
///
/// # Panics
///
/// If the worker ends or fails instead: a benchmark with a broken guest measures nothing.
pub fn answer(worker: &mut WorkerHandle) -> Message {
    match worker.recv_blocking() {
        Some(WorkerEvent::Message(message)) => message,
        other => panic!("expected a message from `{}`, got {other:?}", worker.name()),
    }
}

/// Spawns a worker of `component` on `host`, posts it `message` and waits for its answer:
/// spawn to first message, and a worker that has started (its script run, for a script).
///
/// # Panics
///
/// If the worker cannot start or does not answer.
pub fn first_answer(host: &Host, component: &Component, message: Message) -> WorkerHandle {
    let mut worker = host.spawn(component, wasm_workers::WorkerOptions::default()).expect("the worker starts");
    worker.post_message(message).expect("the worker takes a message");
    answer(&mut worker);
    worker
}

/// Posts `message`, waiting while the worker's queue is full (its limit bounds how far a
/// sender may run ahead: back-pressure, where the native baseline's channel is unbounded).
///
/// # Panics
///
/// If the worker refuses the message for any other reason (it ended, or the message is too
/// large): a benchmark that loses messages measures nothing.
pub fn post_waiting(worker: &WorkerHandle, mut message: Message) {
    loop {
        match worker.post_message(message) {
            Ok(()) => return,
            Err(error) if error.reason == DropReason::QueueFull => {
                REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                message = error.message;
                std::thread::yield_now();
            }
            Err(error) => panic!("{error}"),
        }
    }
}

pub use prime_count::is_prime;

/// Native baseline of the delegation example: `k` threads, equal ranges of `0..n`, results
/// over a channel; thread spawning included.
pub fn native_fanout(n: u64, k: u64) -> u64 {
    let (tx, rx) = mpsc::channel();
    for i in 0..k {
        let tx = tx.clone();
        let (from, to) = (n * i / k, n * (i + 1) / k);
        std::thread::spawn(move || {
            let _ = tx.send((from..to).filter(|&x| is_prime(x)).count() as u64);
        });
    }
    drop(tx);
    rx.iter().sum()
}

/// Native baseline of the balanced delegation: `threads` threads take chunks of `chunk`
/// numbers from a shared counter until none is left.
pub fn native_balanced(n: u64, threads: u64, chunk: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = std::sync::Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut count = 0;
                loop {
                    let from = next.fetch_add(chunk, Ordering::Relaxed);
                    if from >= n {
                        return count;
                    }
                    count += (from..(from + chunk).min(n)).filter(|&x| is_prime(x)).count() as u64;
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("no panic")).sum()
}

/// The resident memory of this process, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The median of `values` (the upper one of an even count), sorting them.
///
/// # Panics
///
/// If `values` is empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// How many posts [`post_waiting`] saw refused as "queue full" (and retried), since the
/// last [`take_refused`].
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The process's context switches so far: voluntary and involuntary, all its threads
/// (`getrusage(RUSAGE_SELF)`).
///
/// # Panics
///
/// If `getrusage` fails (it does not, for `RUSAGE_SELF`).
pub fn context_switches() -> (i64, i64) {
    // SAFETY: `usage` is a valid `rusage` for `getrusage` to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `RUSAGE_SELF` covers every thread of the process.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0, "getrusage works");
    (usage.ru_nvcsw, usage.ru_nivcsw)
}

/// What [`measure`] found: the time of one item, and the process's context switches per item.
pub struct Measured {
    /// Microseconds per item.
    pub micros: f64,
    /// Voluntary context switches per item (a thread blocked: it parked, or waited in the kernel).
    pub voluntary: f64,
    /// Involuntary ones (a thread was preempted).
    pub involuntary: f64,
}

impl std::fmt::Display for Measured {
    /// `12.34 µs (1.07 + 0.93 switches)`: the time of one item, and the voluntary and
    /// involuntary context switches per item.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} µs ({:.2} + {:.2} switches)", self.micros, self.voluntary, self.involuntary)
    }
}

/// Runs `f`, which does `items` of something (messages, round trips, spawns), and divides its
/// time and the context switches the whole process made meanwhile by `items`.
pub fn measure(items: u64, f: impl FnOnce()) -> Measured {
    let (voluntary, involuntary) = context_switches();
    let start = std::time::Instant::now();
    f();
    let seconds = start.elapsed().as_secs_f64();
    let (voluntary_after, involuntary_after) = context_switches();
    let per = |n: i64| n as f64 / items as f64;
    Measured {
        micros: seconds * 1e6 / items as f64,
        voluntary: per(voluntary_after - voluntary),
        involuntary: per(involuntary_after - involuntary),
    }
}

/// Alternates `wasm` and `native`, each doing `items` of the same work, `rounds` times: prints
/// each round's [`Measured`] figures and their ratio, then the medians of the time per item
/// and of the ratios. A pair is measured seconds apart at most, so that a noisy machine moves
/// both sides alike.
pub fn alternate(rounds: usize, items: u64, mut wasm: impl FnMut(), mut native: impl FnMut()) {
    let (mut wasm_micros, mut native_micros, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let w = measure(items, &mut wasm);
        let n = measure(items, &mut native);
        println!("wasm {w}, native {n}, ratio {:.2}", w.micros / n.micros);
        wasm_micros.push(w.micros);
        native_micros.push(n.micros);
        ratios.push(w.micros / n.micros);
    }
    println!(
        "median of {rounds}: wasm {:.2} µs, native {:.2} µs, ratio {:.2}",
        median(&mut wasm_micros),
        median(&mut native_micros),
        median(&mut ratios)
    );
}

/// The count of refused posts since the last call, reset.
pub fn take_refused() -> u64 {
    REFUSED.swap(0, std::sync::atomic::Ordering::Relaxed)
}

/// Runs `f` on a thread of its own, pinned to one CPU if `pinned` (the CPU this thread runs
/// on now), and returns what it returns. Threads started from it (a host's worker threads)
/// inherit its CPU set, and a host made there sees one CPU (so its workers do not spin).
pub fn on_thread<T: Send + 'static>(pinned: bool, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        if pinned {
            pin_to_one_cpu();
        }
        f()
    })
    .join()
    .expect("the setup thread does not panic")
}

/// The calling thread's CPU set, to give back to [`restore_cpus`].
pub struct Cpus(libc::cpu_set_t);

/// Pins the calling thread to the CPU it runs on; returns the CPU set it had.
///
/// # Panics
///
/// If the kernel refuses.
pub fn pin_to_one_cpu() -> Cpus {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `sched_getcpu` has no preconditions; `before` and `set` are valid CPU sets for
    // `sched_getaffinity` and `sched_setaffinity` of the calling thread (pid 0).
    unsafe {
        let mut before: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, size, &mut before), 0, "the CPU set is readable");
        let cpu = libc::sched_getcpu().max(0) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, size, &set), 0, "pinned");
        Cpus(before)
    }
}

/// Gives the calling thread back the CPU set [`pin_to_one_cpu`] took from it.
pub fn restore_cpus(cpus: Cpus) {
    // SAFETY: a CPU set read by `sched_getaffinity`, for the calling thread.
    unsafe {
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &cpus.0), 0, "restored");
    }
}

/// A NATS server (with JetStream) of the benchmark's own, on a port the kernel chose; stopped
/// when dropped. Needs `nats-server` on the PATH or in /usr/sbin.
pub struct NatsServer {
    child: std::process::Child,
    /// Its address.
    pub url: String,
    dir: std::path::PathBuf,
}

impl NatsServer {
    /// Starts one and waits until it listens.
    ///
    /// # Panics
    ///
    /// If `nats-server` cannot be started or does not say where it listens within 30 s.
    pub fn start() -> NatsServer {
        use std::io::BufRead;
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|path| path.exists())
            .unwrap_or_else(|| "nats-server".into());
        let dir = std::env::temp_dir().join(format!("wasm-workers-bench-nats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = std::process::Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {} (install nats-server): {error}", binary.display()));
        let log = child.stderr.take().expect("piped");
        let (port_tx, port) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
                if let Some(at) = line.split("Listening for client connections on ").nth(1) {
                    let _ = port_tx.send(at.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                }
            }
        });
        let port = port
            .recv_timeout(std::time::Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("the NATS server says where it listens");
        NatsServer { child, url: format!("nats://127.0.0.1:{port}"), dir }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bundle of the JavaScript worker scripts of `guests/js/<example>/`, built on first use
/// (see [`guest_build::js_bundle`]); each `NAME.js` is `NAME.wasm` in it.
///
/// # Panics
///
/// If the build fails (Node.js and `guest-js/node_modules` are needed).
pub fn js_bundle(example: &str) -> std::path::PathBuf {
    guest_build::js_bundle(example, wasm_workers::scripts::fingerprint(), |scripts, out| {
        wasm_workers::scripts::build_js(scripts, out, None).map(drop).map_err(|e| e.to_string())
    })
}

/// The native baseline of a worker that answers every message with itself: a thread that
/// sends back on the second channel what arrives on the first, until the first is dropped.
/// Returns the way there and the way back.
pub fn native_echo<T: Send + 'static>() -> (mpsc::Sender<T>, mpsc::Receiver<T>) {
    let (to_thread, from_main) = mpsc::channel::<T>();
    let (to_main, from_thread) = mpsc::channel::<T>();
    std::thread::spawn(move || {
        for message in from_main {
            let _ = to_main.send(message);
        }
    });
    (to_thread, from_thread)
}

/// The throughput scenario's wasm side: posts `messages` small messages (message `i` holds
/// `i` as 8 little-endian bytes) and the end marker to `worker`, a `counter` guest, through
/// [`post_waiting`], and waits for its count.
///
/// # Panics
///
/// If a message is lost or arrives out of order (the count is not `messages`).
pub fn count_through_worker(worker: &mut WorkerHandle, messages: u64) {
    for i in 0..messages {
        post_waiting(worker, Message::new(wasm_workers::Codec::Raw, i.to_le_bytes().to_vec()));
    }
    post_waiting(worker, Message::new(wasm_workers::Codec::Raw, Vec::new()));
    let count: u64 = answer(worker).decode_json().expect("a count");
    assert_eq!(count, messages, "every message arrived, in order");
}

/// The throughput scenario's native side: a thread doing the `counter` guest's work (count
/// the messages that arrive in order; an empty one is the end marker, answered with the
/// count), with the channel to it and the one from it. It ends when the sender is dropped.
pub fn native_counter() -> NativeCounter {
    let (to_thread, from_main) = mpsc::channel::<Vec<u8>>();
    let (to_main, from_thread) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        let mut count = 0;
        for message in from_main {
            if message.is_empty() {
                let _ = to_main.send(count);
                count = 0;
            } else if message.get(..8).and_then(|bytes| bytes.try_into().ok()).map(u64::from_le_bytes) == Some(count) {
                count += 1;
            }
        }
    });
    NativeCounter { to_thread, from_thread }
}

/// See [`native_counter`].
pub struct NativeCounter {
    to_thread: mpsc::Sender<Vec<u8>>,
    from_thread: mpsc::Receiver<u64>,
}

impl NativeCounter {
    /// The same messages as [`count_through_worker`], through the channel.
    ///
    /// # Panics
    ///
    /// If the count is not `messages`.
    pub fn count(&self, messages: u64) {
        for i in 0..messages {
            self.to_thread.send(i.to_le_bytes().to_vec()).expect("the thread receives");
        }
        self.to_thread.send(Vec::new()).expect("the thread receives");
        assert_eq!(self.from_thread.recv().expect("a count"), messages, "every message arrived, in order");
    }
}
