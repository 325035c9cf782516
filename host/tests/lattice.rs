//! The lattice across processes on one machine: each test starts its own NATS server (with
//! JetStream) on a free loopback port and its own `wasm-workers host` processes, and stops them.
//! `nats-server` must be on the PATH (or in /usr/sbin): `.ci/run` installs it.

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{temp_dir, text, wasm_workers};

/// How long a test waits for a server or a host to come up before it fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A NATS server of this test's own; stopped when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: PathBuf,
}

impl Server {
    fn start(name: &str) -> Server {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let port = free_port();
        let dir = temp_dir(&format!("nats-{name}"));
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {} (install nats-server): {error}", binary.display()));
        wait_for(|| TcpStream::connect(("127.0.0.1", port)).is_ok(), "the NATS server accepts connections");
        Server { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `wasm-workers host` process; killed when dropped, unless stopped.
struct LatticeHost {
    child: Option<Child>,
}

impl LatticeHost {
    fn start(server: &Server, lattice: &str, id: &str, cache: &Path) -> LatticeHost {
        let child = Command::new(env!("CARGO_BIN_EXE_wasm-workers"))
            .args(["host", "--nats", &server.url, "--lattice", lattice, "--id", id, "--max-workers", "4"])
            .env("WASM_WORKERS_CACHE_DIR", cache)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        LatticeHost { child: Some(child) }
    }

    /// Stops it with SIGTERM; returns whether it exited cleanly, and what it wrote to stderr.
    fn stop(mut self) -> (bool, String) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        (status.success(), stderr)
    }
}

impl Drop for LatticeHost {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `condition` holds, failing after [`READY_TIMEOUT`]. For processes coming up,
/// which announce it to no one: checked with a growing pause between tries.
fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    while !condition() {
        assert!(start.elapsed() < READY_TIMEOUT, "{what}: not within {READY_TIMEOUT:?}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The ids `wasm-workers hosts` lists.
fn live_hosts(server: &Server, lattice: &str) -> Vec<String> {
    let output = wasm_workers(&["hosts", "--nats", &server.url, "--lattice", lattice], "");
    assert!(output.status.success(), "hosts: {}", text(&output.stderr));
    text(&output.stdout).lines().skip(1).filter_map(|line| line.split_whitespace().next().map(str::to_string)).collect()
}

fn delegation_lattice() -> String {
    // The manifest names the bundled guests' build: build them first.
    let _ = guest_build::guests_dir();
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/delegation-lattice.toml").display().to_string()
}

#[test]
fn delegation_with_its_cores_spread_over_three_hosts_prints_the_prime_count() {
    let server = Server::start("delegation");
    let cache = temp_dir("lattice-hosts-cache");
    let hosts: Vec<LatticeHost> =
        ["h1", "h2", "h3"].iter().map(|id| LatticeHost::start(&server, "delegation", id, &cache.join(id))).collect();
    wait_for(|| live_hosts(&server, "delegation").len() == 3, "three hosts on the lattice");

    let manifest = delegation_lattice();
    let args = ["run", &manifest, "--nats", &server.url, "--lattice", "delegation", "--stats"];
    let output = wasm_workers(&args, "{\"n\": 10000000, \"k\": 6}\n");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(text(&output.stdout).trim(), "664579");
    // Each host ran two of the six cores: placement spreads them by free slots.
    for id in ["h1", "h2", "h3"] {
        let cores =
            stderr.lines().filter(|line| line.starts_with("core-") && line.contains(&format!(" {id} "))).count();
        assert_eq!(cores, 2, "host {id} ran {cores} cores:\n{stderr}");
    }
    assert!(stderr.contains("0 dropped"), "{stderr}");

    // The hosts leave cleanly on SIGTERM, and the lattice forgets them.
    for host in hosts {
        let (clean, stderr) = host.stop();
        assert!(clean, "{stderr}");
        assert!(stderr.contains("left lattice `delegation`"), "{stderr}");
    }
    assert_eq!(live_hosts(&server, "delegation"), Vec::<String>::new());
}

#[test]
fn a_placement_no_host_can_take_fails_the_spawn_with_the_reason() {
    let server = Server::start("empty");
    let manifest = delegation_lattice();
    let args = ["run", &manifest, "--nats", &server.url, "--lattice", "empty"];
    let output = wasm_workers(&args, "{\"n\": 1000, \"k\": 2}\n");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot start `core.wasm` on the lattice: no host has joined the lattice"), "{stderr}");
}

#[test]
fn an_unreachable_server_is_a_one_line_error_and_nothing_starts() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let manifest = delegation_lattice();
    let output = wasm_workers(&["run", &manifest, "--nats", &url, "--lattice", "none"], "{\"n\": 10}\n");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("cannot connect to the NATS server at {url}")), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn without_a_lattice_the_same_manifest_runs_its_cores_here() {
    let manifest = delegation_lattice();
    let output = wasm_workers(&["run", &manifest], "{\"n\": 1000000, \"k\": 3}\n");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "78498");
}

#[test]
fn an_invalid_lattice_name_is_refused() {
    let manifest = delegation_lattice();
    let output = wasm_workers(&["run", &manifest, "--nats", "nats://127.0.0.1:1", "--lattice", "a.b"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("invalid lattice name `a.b`"), "{}", text(&output.stderr));
}
