//! A hostile guest: each message is an attack on the host's sandbox, and the guest posts
//! what it got out of it. For the hardening tests (`host/tests/hardening.rs`).
//!
//! - `{"link-escape": {"link": l, "target": t, "location": x}}`: makes a symbolic link `l`
//!   (in the first directory it was granted) pointing to `t`, then spawns and connects to
//!   `x` through it; posts `{"spawn": why, "connect": why}` (or `"ok"`).
//! - `{"spawn": x}`: spawns `x`; posts `"ok"` or why not.
//! - `{"from-bytes": {"size": s, "count": n}}`, `{"buffers": {...}}`: makes `n` buffers of
//!   `s` bytes (copied from its memory, or made by the host) and keeps them; posts how many.
//! - `{"ports": n}`: makes `n` message channels and keeps them; posts `n`.
//! - `{"self-queue": {"size": s, "count": n}}`: posts `n` messages of `s` bytes on a channel
//!   whose other end it holds and never starts; posts `{"refused": r, "error": e}`.
//! - `{"timers": n}`: sets `n` timeouts an hour away; `{"timer-churn": n}`: sets and clears
//!   `n`; posts `n`.
//! - `{"shared-bomb": n}`: connects to `n` shared workers of distinct names (itself, named
//!   after this worker),
//!   keeping their ports; posts `{"connected": c, "error": e}`.
//! - `{"shared-loop": name}`: connects to the shared worker `name` (itself), whose
//!   `on-connect` never returns when its name starts with `loop`.
//! - `{"connect-flood": {"name": n, "count": c}}`: connects to the shared worker `n` (itself)
//!   `c` times, dropping each port; posts `{"connected": k, "error": e}`.
//! - `{"post": s}`: posts `s` bytes to its parent; posts `"ok"` or why not.
//! - `{"say": n}`: posts the numbers `0..n` to its parent, as fast as it can, then says
//!   `said n` on its stderr.
//! - `{"busy": ms}`: uses `ms` milliseconds of CPU, then posts `"done"`.
//! - `{"tally": n}` counts and sums `n`; `"report"` posts `{"count": c, "sum": s}`.
//! - `{"ops": [bytes]}`: runs the bytes as a program of host calls (see [`Hostile::run`]),
//!   for the host-call fuzz target; posts `"done"` at its end.

use serde::Deserialize;
use serde_json::{json, Value};
use wasm_workers_guest::{
    clear_timer, export_worker, name, post, post_bytes, set_timeout, Buffer, Child, Codec, MessageChannel, Port,
    SharedWorker, Worker,
};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Attack {
    LinkEscape { link: String, target: String, location: String },
    Spawn(String),
    FromBytes { size: usize, count: u64 },
    Buffers { size: u64, count: u64 },
    Ports(u64),
    SelfQueue { size: usize, count: u64 },
    Timers(u64),
    TimerChurn(u64),
    SharedBomb(u64),
    SharedLoop(String),
    Post(usize),
    Busy(u64),
    Tally(u64),
    Report,
    Ops(Vec<u8>),
    ConnectFlood { name: String, count: u64 },
    Say(u64),
}

#[derive(Default)]
struct Hostile {
    /// What the attacks made, kept so that it stays charged.
    buffers: Vec<Buffer>,
    channels: Vec<MessageChannel>,
    ports: Vec<Port>,
    children: Vec<Child<Hostile>>,
    /// How many `tally` messages arrived, and the sum of their numbers.
    tally: (u64, u64),
}

fn outcome<T>(result: Result<T, String>) -> Value {
    match result {
        Ok(_) => json!("ok"),
        Err(error) => json!(error),
    }
}

/// Makes `link` → `target` in the first preopened directory.
fn symlink(link: &str, target: &str) -> Result<(), String> {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let (dir, _) = dirs.first().ok_or("no directory was granted")?;
    dir.symlink_at(target, link).map_err(|error| format!("symlink: {error:?}"))
}

impl Hostile {
    /// Runs `program`: each byte's low four bits choose a host call, the next byte (where
    /// one is needed) its argument. Whatever the bytes, only the host can refuse: every
    /// refusal it returns is taken as it comes, and a trap is the host's own verdict.
    fn run(&mut self, program: &[u8]) {
        let mut bytes = program.iter().copied();
        while let Some(op) = bytes.next() {
            let arg = usize::from(bytes.next().unwrap_or(0));
            let pick = |len: usize| (len > 0).then(|| arg % len);
            match op % 16 {
                0 => {
                    let _ = wasm_workers_guest::try_post(&arg);
                }
                1 => {
                    if let Ok(buffer) = Buffer::new((arg as u64) << 10) {
                        self.buffers.push(buffer);
                    }
                }
                2 => self.buffers.push(Buffer::from_bytes(&vec![op; arg << 8])),
                3 => {
                    if let Some(i) = pick(self.buffers.len()) {
                        let buffer = self.buffers.swap_remove(i);
                        let _ = wasm_workers_guest::post_with(
                            &"buffer",
                            wasm_workers_guest::Transfer::new().buffer(&buffer),
                        );
                    }
                }
                4 => self.channels.push(MessageChannel::new()),
                5 => {
                    if let Some(i) = pick(self.channels.len()) {
                        let _ = self.channels[i].port1.post_bytes(Codec::Raw, vec![op; arg]);
                    }
                }
                6 => {
                    if let Some(i) = pick(self.channels.len()) {
                        self.channels[i].port2.close();
                    }
                }
                7 => {
                    if let Some(i) = pick(self.channels.len()) {
                        let channel = self.channels.swap_remove(i);
                        let transfer = wasm_workers_guest::Transfer::new().port(&channel.port2);
                        let _ = wasm_workers_guest::post_with(&"port", transfer);
                        self.ports.push(channel.port1);
                    }
                }
                8 => {
                    set_timeout(arg as u32, |_: &mut Hostile| {
                        let _ = wasm_workers_guest::try_post(&"tick");
                    });
                }
                9 => clear_timer(arg as u32),
                10 => {
                    if let Ok(child) = Child::<Hostile>::spawn("hostile.wasm", Some("chaos-child")) {
                        let _ = child.try_post(&json!({ "tally": arg }));
                        self.children.push(child);
                    }
                }
                11 => {
                    if let Some(i) = pick(self.children.len()) {
                        self.children.swap_remove(i).terminate();
                    }
                }
                12 => {
                    if let Some(i) = pick(self.buffers.len()) {
                        self.buffers.swap_remove(i);
                    }
                }
                13 => {
                    if let Some(i) = pick(self.children.len()) {
                        if let Some(buffer) = self.buffers.pop() {
                            let transfer = wasm_workers_guest::Transfer::new().buffer(&buffer);
                            let _ = self.children[i].post_with(&json!({ "tally": 1 }), transfer);
                        }
                    }
                }
                14 => {
                    if let Some(i) = pick(self.channels.len()) {
                        self.channels.swap_remove(i);
                    }
                }
                _ => {
                    if let Some(i) = pick(self.channels.len()) {
                        self.channels[i].port2.start();
                    }
                }
            }
        }
    }
}

impl Worker for Hostile {
    type Message = Attack;

    fn on_message(&mut self, attack: Attack) {
        match attack {
            Attack::LinkEscape { link, target, location } => {
                if let Err(error) = symlink(&link, &target) {
                    post(&json!({ "error": error }));
                    return;
                }
                let spawn = outcome(Child::<Hostile>::spawn(&location, Some("escaped")).map(|c| self.children.push(c)));
                let connect = outcome(SharedWorker::connect(&location, "escaped").map(|p| self.ports.push(p)));
                post(&json!({ "spawn": spawn, "connect": connect }));
            }
            Attack::Spawn(location) => {
                post(&outcome(Child::<Hostile>::spawn(&location, Some("child")).map(|c| self.children.push(c))))
            }
            Attack::FromBytes { size, count } => {
                let bytes = vec![7u8; size];
                for _ in 0..count {
                    self.buffers.push(Buffer::from_bytes(&bytes));
                }
                post(&count);
            }
            Attack::Buffers { size, count } => {
                let mut made = 0u64;
                for _ in 0..count {
                    match Buffer::new(size) {
                        Ok(buffer) => self.buffers.push(buffer),
                        Err(_) => break,
                    }
                    made += 1;
                }
                post(&made);
            }
            Attack::Ports(count) => {
                for _ in 0..count {
                    self.channels.push(MessageChannel::new());
                }
                post(&count);
            }
            Attack::SelfQueue { size, count } => {
                let channel = MessageChannel::new();
                let bytes = vec![b'x'; size];
                let (mut refused, mut last) = (0u64, None);
                for _ in 0..count {
                    if let Err(error) = channel.port1.post_bytes(Codec::Raw, bytes.clone()) {
                        refused += 1;
                        last = Some(error.to_string());
                    }
                }
                self.channels.push(channel);
                post(&json!({ "refused": refused, "error": last }));
            }
            Attack::Timers(count) => {
                for _ in 0..count {
                    set_timeout(3_600_000, |_: &mut Hostile| {});
                }
                post(&count);
            }
            Attack::TimerChurn(count) => {
                for _ in 0..count {
                    let id = set_timeout(3_600_000, |_: &mut Hostile| {});
                    clear_timer(id);
                }
                post(&count);
            }
            Attack::SharedBomb(count) => {
                let mut connected = 0u64;
                let mut error = None;
                for i in 0..count {
                    match SharedWorker::connect("hostile.wasm", &format!("{}-bomblet-{i}", name())) {
                        Ok(port) => self.ports.push(port),
                        Err(why) => {
                            error = Some(why);
                            break;
                        }
                    }
                    connected += 1;
                }
                post(&json!({ "connected": connected, "error": error }));
            }
            Attack::SharedLoop(name) => {
                let port = SharedWorker::connect("hostile.wasm", &name);
                post(&outcome(port.map(|p| self.ports.push(p))));
            }
            Attack::Post(size) => post(&outcome(post_bytes(Codec::Raw, vec![0u8; size]).map_err(|e| e.to_string()))),
            Attack::Busy(ms) => {
                let start = std::time::Instant::now();
                let mut n = 0u64;
                while start.elapsed() < std::time::Duration::from_millis(ms) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                post(&"done");
            }
            Attack::Tally(n) => self.tally = (self.tally.0 + 1, self.tally.1 + n),
            Attack::Report => post(&json!({ "count": self.tally.0, "sum": self.tally.1 })),
            Attack::ConnectFlood { name, count } => {
                // Kept aside and let go at the end, to have room to say how it went.
                let reserve = Buffer::new(64 << 10);
                let mut connected = 0u64;
                let mut error = None;
                for _ in 0..count {
                    match SharedWorker::connect("hostile.wasm", &name) {
                        Ok(port) => drop(port),
                        Err(why) => {
                            error = Some(why);
                            break;
                        }
                    }
                    connected += 1;
                }
                drop(reserve);
                post(&json!({ "connected": connected, "error": error }));
            }
            Attack::Say(count) => {
                for i in 0..count {
                    post(&i);
                }
                eprintln!("said {count}");
            }
            Attack::Ops(program) => {
                self.run(&program);
                post(&"done");
            }
        }
    }

    fn on_connect(&mut self, port: Port) {
        if name().starts_with("loop") {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        self.ports.push(port);
    }
}

export_worker!(Hostile);
