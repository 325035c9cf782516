//! The lattice across processes on one machine: each test starts its own NATS server (with
//! JetStream) on a free loopback port and its own `wasm-workers host` processes, and stops them.
//! `nats-server` must be on the PATH (or in /usr/sbin): `.ci/run` installs it.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{temp_dir, text, wasm_workers};

/// How long a test waits for a server or a host to come up before it fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A NATS server of this test's own, on a port the kernel chose; stopped when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: PathBuf,
    port: u16,
}

impl Server {
    fn start(name: &str) -> Server {
        let dir = temp_dir(&format!("nats-{name}"));
        let (child, port) = Server::spawn(&dir, None);
        Server { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir, port }
    }

    /// Kills the server and starts it again, on the same port, with the same store.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, port) = Server::spawn(&self._dir, Some(self.port));
        assert_eq!(port, self.port);
        self.child = child;
    }

    /// A cluster of three servers on loopback, each storing in a directory of its own; returned
    /// once its JetStream has a leader. Each server's `url` lists all three.
    fn cluster(name: &str) -> Vec<Server> {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let list = routes.iter().map(|port| format!("nats://127.0.0.1:{port}")).collect::<Vec<_>>().join(",");
        let (leader_tx, leader) = std::sync::mpsc::channel();
        let mut servers: Vec<Server> = routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                let dir = temp_dir(&format!("nats-{name}-{i}"));
                let cluster = [
                    "--server_name".to_string(),
                    format!("{name}-{i}"),
                    "--cluster_name".to_string(),
                    name.to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{route}"),
                    "--routes".to_string(),
                    list.clone(),
                ];
                let (child, port) = Server::spawn_with(&dir, None, &cluster, Some(leader_tx.clone()));
                Server { child, url: String::new(), _dir: dir, port }
            })
            .collect();
        leader.recv_timeout(READY_TIMEOUT).expect("the cluster elects a JetStream leader");
        let urls = servers.iter().map(|server| format!("nats://127.0.0.1:{}", server.port)).collect::<Vec<_>>();
        for server in &mut servers {
            server.url = urls.join(",");
        }
        servers
    }

    /// Starts a server storing in `dir`, on `port` or one the kernel chose; returns it once it
    /// listens, with its port.
    fn spawn(dir: &Path, port: Option<u16>) -> (Child, u16) {
        Server::spawn_with(dir, port, &[], None)
    }

    /// [`spawn`](Self::spawn) with more arguments; `leader` hears when the server's JetStream
    /// cluster has a leader.
    fn spawn_with(
        dir: &Path,
        port: Option<u16>,
        extra: &[String],
        leader: Option<std::sync::mpsc::Sender<()>>,
    ) -> (Child, u16) {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        // `-p -1`: a free port, which the server says in its log once it listens.
        let port_arg = port.map_or("-1".to_string(), |port| port.to_string());
        let mut child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {} (install nats-server): {error}", binary.display()));
        let log = child.stderr.take().unwrap();
        let (port_tx, port) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            // Read to the end, so that the server never blocks on its log.
            for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
                if let Some(at) = line.split("Listening for client connections on ").nth(1) {
                    let _ = port_tx.send(at.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                }
                if line.contains("JetStream cluster new metadata leader") || line.contains("metadata leader") {
                    if let Some(leader) = &leader {
                        let _ = leader.send(());
                    }
                }
            }
        });
        let port = port
            .recv_timeout(READY_TIMEOUT)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the NATS server did not say where it listens within {READY_TIMEOUT:?}"));
        (child, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `wasm-workers host` process; killed when dropped, unless stopped. Its stderr is read as
/// it comes: the line saying it joined the lattice is the event its start waits for.
struct LatticeHost {
    child: Option<Child>,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    joined: std::sync::mpsc::Receiver<()>,
}

impl LatticeHost {
    fn start(server: &Server, lattice: &str, id: &str, cache: &Path) -> LatticeHost {
        LatticeHost::start_with(server, lattice, id, cache, &[])
    }

    fn start_with(server: &Server, lattice: &str, id: &str, cache: &Path, extra: &[&str]) -> LatticeHost {
        std::fs::create_dir_all(cache).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasm-workers"))
            .args(["host", "--nats", &server.url, "--lattice", lattice, "--id", id, "--max-workers", "4"])
            .args(extra)
            .env("WASM_WORKERS_CACHE_DIR", cache)
            // The host logs "joined the lattice" once it has advertised itself.
            .env("RUST_LOG", std::env::var("LATTICE_HOST_LOG").unwrap_or("wasm_workers::lattice=info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (joined_tx, joined) = std::sync::mpsc::channel();
        let kept = log.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("joined the lattice") {
                    let _ = joined_tx.send(());
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        LatticeHost { child: Some(child), log, reader: Some(reader), joined }
    }

    /// What it wrote to stderr so far.
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops it with SIGTERM; returns whether it exited cleanly, and what it wrote to stderr.
    fn stop(mut self) -> (bool, String) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = child.wait().unwrap();
        // Its stderr is closed now: the reader has read all of it once it ends.
        self.reader.take().unwrap().join().unwrap();
        (status.success(), self.log())
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

/// Waits until each of `hosts` has joined the lattice (an event: the line it logs then), and
/// checks that the lattice lists exactly `ids`; on failure, shows what the hosts wrote.
fn wait_for_hosts(server: &Server, lattice: &str, ids: &[&str], hosts: &[&LatticeHost]) {
    let logs = || hosts.iter().map(|host| host.log()).collect::<Vec<_>>().join("\n---\n");
    for host in hosts {
        if host.joined.recv_timeout(READY_TIMEOUT).is_err() {
            panic!("a host did not join within {READY_TIMEOUT:?}; hosts' stderr:\n{}", logs());
        }
    }
    assert_eq!(live_hosts(server, lattice), ids, "hosts' stderr:\n{}", logs());
}

/// A connection to `lattice`, to read its hosts' advertisements.
fn watch(server: &Server, lattice: &str) -> wasm_workers::lattice::Lattice {
    let options =
        wasm_workers::lattice::LatticeOptions { url: server.url.clone(), name: lattice.into(), ..Default::default() };
    wasm_workers::lattice::Lattice::connect(&options).unwrap()
}

/// The ids `wasm-workers hosts` lists.
fn live_hosts(server: &Server, lattice: &str) -> Vec<String> {
    try_live_hosts(server, lattice).unwrap_or_else(|error| panic!("hosts: {error}"))
}

/// The ids `wasm-workers hosts` lists, or what it said if it failed.
fn try_live_hosts(server: &Server, lattice: &str) -> Result<Vec<String>, String> {
    let output = wasm_workers(&["hosts", "--nats", &server.url, "--lattice", lattice], "");
    if !output.status.success() {
        return Err(text(&output.stderr));
    }
    Ok(text(&output.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect())
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
    wait_for_hosts(&server, "delegation", &["h1", "h2", "h3"], &hosts.iter().collect::<Vec<_>>());

    let manifest = delegation_lattice();
    let args = ["run", &manifest, "--nats", &server.url, "--lattice", "delegation", "--stats"];
    let output = wasm_workers(&args, "{\"n\": 10000000, \"k\": 6}\n");
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(text(&output.stdout).trim(), "664579");
    // Placement spreads the six cores by free slots: every host ran some (two each, unless a
    // core ended before the last were placed), and every core ran on one of them.
    let mut placed = 0;
    for id in ["h1", "h2", "h3"] {
        let cores =
            stderr.lines().filter(|line| line.starts_with("core-") && line.contains(&format!(" {id} "))).count();
        assert!(cores >= 1, "host {id} ran no core:\n{stderr}");
        placed += cores;
    }
    assert_eq!(placed, 6, "{stderr}");
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

/// A manifest in `dir` whose entry is the `supervisor` guest with its spawns placed.
fn supervisor_on_lattice(dir: &Path) -> String {
    let component = guest_build::guest("supervisor");
    let manifest = dir.join("supervisor.toml");
    std::fs::write(
        &manifest,
        format!(
            "entry = \"supervisor\"\n\n[workers.supervisor]\ncomponent = {:?}\nplace-spawns = \"any\"\n",
            component
        ),
    )
    .unwrap();
    manifest.display().to_string()
}

/// The hosts' ids and running counts, as they last advertised them.
fn running_on(lattice: &wasm_workers::lattice::Lattice) -> Vec<(String, usize)> {
    lattice.hosts().unwrap().into_iter().map(|host| (host.id, host.running)).collect()
}

#[test]
fn a_host_killed_during_a_fan_out_fails_its_workers_within_three_seconds_and_the_others_finish() {
    let server = Server::start("kill");
    let dir = temp_dir("lattice-kill");
    let mut hosts: Vec<LatticeHost> =
        ["h1", "h2", "h3"].iter().map(|id| LatticeHost::start(&server, "kill", id, &dir.join(id))).collect();
    wait_for_hosts(&server, "kill", &["h1", "h2", "h3"], &hosts.iter().collect::<Vec<_>>());

    // Six cores, each counting the primes below 10,000,000: two on each host.
    let manifest = supervisor_on_lattice(&dir);
    let cores: Vec<String> = (0..6)
        .map(|i| {
            format!(r#"{{"location": "core.wasm", "name": "core-{i}", "messages": [{{"from": 0, "to": 10000000}}]}}"#)
        })
        .collect();
    let mut run =
        support::start_cli(&["run", &manifest, "--nats", &server.url, "--lattice", "kill"], &support::test_cache());
    {
        use std::io::Write;
        let mut stdin = run.stdin.take().unwrap();
        writeln!(stdin, r#"{{"spawn": [{}]}}"#, cores.join(", ")).unwrap();
    }
    let stdout = run.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send((Instant::now(), line));
        }
    });
    let mut on_h2 = 0;
    let lattice = watch(&server, "kill");
    // Counters no event announces: waited for as the suite waits for counters.
    support::wait_until(|| {
        let running = running_on(&lattice);
        on_h2 = running.iter().find(|(id, _)| id == "h2").map_or(0, |(_, n)| *n);
        running.iter().map(|(_, n)| n).sum::<usize>() == 6 && on_h2 > 0
    });
    // SIGKILL: h2 says nothing more, to anyone.
    let killed_at = Instant::now();
    let mut h2 = hosts.remove(1).child.take().unwrap();
    h2.kill().unwrap();
    h2.wait().unwrap();

    let mut counts = 0;
    let mut lost = Vec::new();
    for (at, line) in lines.iter() {
        let report: serde_json::Value = serde_json::from_str(&line).unwrap();
        if report.get("message") == Some(&serde_json::json!(664579)) {
            counts += 1;
        }
        if let Some(error) = report.get("error").and_then(|e| e.as_str()) {
            lost.push((at.duration_since(killed_at), error.to_string()));
        }
    }
    let status = run.wait().unwrap();
    assert_eq!(lost.len(), on_h2, "the cores of h2 are reported lost: {lost:?}");
    for (after, error) in &lost {
        assert!(error.contains("host `h2` stopped answering"), "{error}");
        assert!(*after < Duration::from_secs(3), "reported {after:?} after the kill: {error}");
    }
    assert_eq!(counts, 6 - on_h2, "the cores of h1 and h3 answer right");
    assert!(status.success() || status.code() == Some(1), "{status:?}");
}

#[test]
fn a_host_that_allows_only_some_components_refuses_the_others_by_hash() {
    let server = Server::start("allow");
    let dir = temp_dir("lattice-allow");
    let only = "0".repeat(64);
    let host = LatticeHost::start_with(&server, "allow", "strict", &dir.join("strict"), &["--allow-component", &only]);
    wait_for_hosts(&server, "allow", &["strict"], &[&host]);
    let manifest = delegation_lattice();
    let output =
        wasm_workers(&["run", &manifest, "--nats", &server.url, "--lattice", "allow"], "{\"n\": 100, \"k\": 1}\n");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("host `strict` refused: component"), "{stderr}");
    assert!(stderr.contains("is not one this host runs (--allow-component)"), "{stderr}");
}

#[test]
fn a_message_larger_than_the_servers_payload_limit_crosses_whole_and_in_order() {
    let server = Server::start("large");
    let dir = temp_dir("lattice-large");
    let host = LatticeHost::start(&server, "large", "far", &dir.join("far"));
    wait_for_hosts(&server, "large", &["far"], &[&host]);
    // 3 MiB, three times the server's default payload limit, there and back.
    let big = "x".repeat(3 << 20);
    let spec = format!(r#"{{"spawn": [{{"location": "echo.wasm", "messages": ["{big}", "after", "close"]}}]}}"#);
    let manifest = supervisor_on_lattice(&dir);
    let output =
        wasm_workers(&["run", &manifest, "--nats", &server.url, "--lattice", "large", "--stats"], &(spec + "\n"));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let reports: Vec<serde_json::Value> =
        text(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let messages: Vec<&serde_json::Value> = reports.iter().filter_map(|report| report.get("message")).collect();
    assert_eq!(messages.len(), 3, "{stderr}");
    assert_eq!(messages[0].as_str().map(str::len), Some(3 << 20));
    assert_eq!(messages[1], "after");
    assert_eq!(messages[2], "close");
    assert_eq!(reports.last().unwrap().get("closed"), Some(&serde_json::json!(true)));
    assert!(stderr.lines().any(|line| line.contains(" far ") && line.contains("closed")), "{stderr}");
}

#[test]
fn a_worker_whose_placing_side_dies_is_ended_and_its_slot_freed() {
    let server = Server::start("orphan");
    let dir = temp_dir("lattice-orphan");
    let host = LatticeHost::start(&server, "orphan", "far", &dir.join("far"));
    wait_for_hosts(&server, "orphan", &["far"], &[&host]);
    // A core with far more than a test's worth of work.
    let manifest = supervisor_on_lattice(&dir);
    let spec = r#"{"spawn": [{"location": "core.wasm", "messages": [{"from": 0, "to": 1000000000000}]}]}"#;
    let mut run =
        support::start_cli(&["run", &manifest, "--nats", &server.url, "--lattice", "orphan"], &support::test_cache());
    {
        use std::io::Write;
        writeln!(run.stdin.take().unwrap(), "{spec}").unwrap();
    }
    let lattice = watch(&server, "orphan");
    support::wait_until(|| running_on(&lattice) == [("far".to_string(), 1)]);
    run.kill().unwrap();
    run.wait().unwrap();
    // The orphaned core is ended, and its slot free again.
    support::wait_until(|| running_on(&lattice) == [("far".to_string(), 0)]);
}

#[test]
fn a_slow_remote_receiver_makes_the_sender_see_queue_full_and_its_host_drops_nothing() {
    let server = Server::start("slow");
    let dir = temp_dir("lattice-slow");
    let host = LatticeHost::start(&server, "slow", "far", &dir.join("far"));
    wait_for_hosts(&server, "slow", &["far"], &[&host]);
    let manifest = dir.join("flood.toml");
    std::fs::write(
        &manifest,
        format!(
            "entry = \"flood\"\n\n[workers.flood]\ncomponent = {:?}\nplace-spawns = \"any\"\nlimits = {{ queued-messages = 64 }}\n",
            guest_build::guest("flood")
        ),
    )
    .unwrap();
    let job = r#"{"location": "sink.wasm", "n": 20000, "message": {"work": 3000}}"#;
    let manifest = manifest.display().to_string();
    let output = wasm_workers(&["run", &manifest, "--nats", &server.url, "--lattice", "slow"], &format!("{job}\n"));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    let (sent, full) = (report["sent"].as_u64().unwrap(), report["full"].as_u64().unwrap());
    assert_eq!(sent + full, 20000, "{report}");
    assert!(full > 0, "the sender was told the receiver is behind: {report}");
    // Everything the sender was allowed to send, the far host could queue: the window held.
    // Read once the host has advertised the sink's end (its ledger is final then).
    let lattice = watch(&server, "slow");
    let mut info = None;
    support::wait_until(|| {
        info = lattice.hosts().unwrap().into_iter().find(|host| host.id == "far");
        info.as_ref().is_some_and(|info| info.started == 1 && info.running == 0)
    });
    let info = info.unwrap();
    assert_eq!(info.queue_full, 0, "{info:?}");
    assert_eq!(info.posted, info.delivered + info.dropped, "{info:?}");
}

#[test]
fn a_guest_places_its_children_by_host_or_labels_and_unplaced_ones_stay_here() {
    let server = Server::start("labels");
    let dir = temp_dir("lattice-labels");
    let east = LatticeHost::start_with(&server, "labels", "a", &dir.join("a"), &["--label", "zone=east"]);
    let west = LatticeHost::start_with(&server, "labels", "b", &dir.join("b"), &["--label", "zone=west"]);
    wait_for_hosts(&server, "labels", &["a", "b"], &[&east, &west]);
    // The supervisor's own manifest places nothing: the guest says where each child goes.
    let manifest = dir.join("supervisor.toml");
    std::fs::write(
        &manifest,
        format!("entry = \"supervisor\"\n\n[workers.supervisor]\ncomponent = {:?}\n", guest_build::guest("supervisor")),
    )
    .unwrap();
    let echo = |name: &str, placement: &str| {
        format!(r#"{{"location": "echo.wasm", "name": "{name}", "messages": ["close"]{placement}}}"#)
    };
    let spec = format!(
        r#"{{"spawn": [{}, {}, {}, {}]}}"#,
        echo("west", r#", "placement": {"labels": {"zone": "west"}}"#),
        echo("on-a", r#", "placement": {"host": "a"}"#),
        echo("local", ""),
        echo("nowhere", r#", "placement": {"labels": {"zone": "north"}}"#),
    );
    let manifest = manifest.display().to_string();
    let output =
        wasm_workers(&["run", &manifest, "--nats", &server.url, "--lattice", "labels", "--stats"], &(spec + "\n"));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stats = |name: &str| stderr.lines().find(|line| line.starts_with(name)).unwrap_or_default().to_string();
    assert!(stats("west ").contains(" b "), "{stderr}");
    assert!(stats("on-a ").contains(" a "), "{stderr}");
    assert!(stats("local ").contains("(here)"), "{stderr}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(r#""spawn-error""#) && stdout.contains("no host of the lattice has the labels"),
        "{stdout}"
    );
    assert_eq!(stdout.matches(r#""closed":true"#).count(), 3, "{stdout}");
}

#[test]
fn a_guests_task_pool_spreads_its_workers_over_the_lattice() {
    let server = Server::start("pool");
    let dir = temp_dir("lattice-pool");
    let a = LatticeHost::start(&server, "pool", "a", &dir.join("a"));
    let b = LatticeHost::start(&server, "pool", "b", &dir.join("b"));
    wait_for_hosts(&server, "pool", &["a", "b"], &[&a, &b]);
    let manifest = dir.join("pool.toml");
    std::fs::write(
        &manifest,
        format!(
            "entry = \"pool\"\n\n[workers.pool]\ncomponent = {:?}\nplace-spawns = \"any\"\n",
            guest_build::guest("delegation-pool")
        ),
    )
    .unwrap();
    let manifest = manifest.display().to_string();
    let output = wasm_workers(
        &["run", &manifest, "--nats", &server.url, "--lattice", "pool", "--stats", "--hardware-concurrency", "4"],
        "{\"n\": 1000000, \"chunk\": 25000}\n",
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(text(&output.stdout).trim(), "78498");
    let pool_workers: Vec<&str> = stderr.lines().filter(|line| line.contains("primes_task.wasm")).collect();
    assert_eq!(pool_workers.len(), 4, "{stderr}");
    for host in [" a ", " b "] {
        assert!(pool_workers.iter().any(|line| line.contains(host)), "no pool worker on{host}:\n{stderr}");
    }
}

#[test]
fn a_port_moved_to_a_worker_on_another_host_keeps_its_100000_messages_in_order() {
    let server = Server::start("move");
    let dir = temp_dir("lattice-move");
    let one = LatticeHost::start(&server, "move", "one", &dir.join("one"));
    let two = LatticeHost::start(&server, "move", "two", &dir.join("two"));
    wait_for_hosts(&server, "move", &["one", "two"], &[&one, &two]);
    let manifest = dir.join("mover.toml");
    std::fs::write(
        &manifest,
        format!("entry = \"mover\"\n\n[workers.mover]\ncomponent = {:?}\n", guest_build::guest("port-mover")),
    )
    .unwrap();
    // The port's first holder is on host `one`, its second on host `two`; the numbers are
    // posted here, before, during and after the move.
    let n = 100_000u64;
    let job = format!(r#"{{"n": {n}, "first": "one", "second": "two"}}"#);
    let manifest = manifest.display().to_string();
    let output =
        wasm_workers(&["run", &manifest, "--nats", &server.url, "--lattice", "move", "--stats"], &(job + "\n"));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}\nhost one:\n{}\nhost two:\n{}", one.log(), two.log());
    let report: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    let (first, second) = (&report["first"], &report["second"]);
    assert_eq!(first["in-order"], true, "{report}");
    assert_eq!(second["in-order"], true, "{report}");
    assert_eq!(first["count"].as_u64().unwrap() + second["count"].as_u64().unwrap(), n, "{report}");
    let next = first["last"].as_u64().map_or(0, |last| last + 1);
    assert_eq!(second["first"].as_u64(), Some(next), "the second holder goes on where the first stopped: {report}");
    assert_eq!(second["last"].as_u64(), Some(n - 1), "{report}");
    let stats = |name: &str| stderr.lines().find(|line| line.starts_with(name)).unwrap_or_default().to_string();
    assert!(stats("first ").contains(" one "), "{stderr}");
    assert!(stats("second ").contains(" two "), "{stderr}");
    assert!(stderr.contains(" 0 in flight"), "{stderr}");
    // Summed over this host and both others, once their ledgers have settled.
    let lattice = stderr.lines().find(|line| line.starts_with("lattice: ")).unwrap_or_default();
    assert!(lattice.contains(" 0 in flight"), "{stderr}");
}

#[test]
fn ports_and_buffers_cross_to_a_worker_on_another_host_and_back() {
    use wasm_workers::{Buffer, Host, Message, PortEvent, WorkerEvent, WorkerOptions};
    let server = Server::start("transfer");
    let dir = temp_dir("lattice-transfer");
    let far = LatticeHost::start(&server, "transfer", "far", &dir.join("far"));
    wait_for_hosts(&server, "transfer", &["far"], &[&far]);
    let host = Host::new().unwrap();
    watch(&server, "transfer").place_from(&host).unwrap();
    let relay = host.load(guest_build::guest("relay")).unwrap();
    // The relay here passes the port and the buffer to its child, placed on `far`, which
    // echoes what arrives on the port and answers the buffer with its head, sending it back.
    let options = WorkerOptions { spawn_placement: Some(wasm_workers::Placement::Any), ..WorkerOptions::named("near") };
    let mut worker = host.spawn(&relay, options).unwrap();
    let (mut here, there) = wasm_workers::channel();
    let buffer = Buffer::from_vec(b"crossing hosts by copy".to_vec());
    let message = Message::json(&serde_json::json!({ "forward": 1 })).unwrap().with_port(there).with_buffer(buffer);
    worker.post_message(message).unwrap();
    match worker.recv_blocking() {
        Some(WorkerEvent::Message(mut message)) => {
            let answer: serde_json::Value = message.decode_json().unwrap();
            assert_eq!(answer["len"], 22, "{answer}");
            assert_eq!(answer["buffer-head"], serde_json::json!(b"crossing hosts b".to_vec()), "{answer}");
            let back = message.buffers.pop().expect("the buffer came back");
            assert_eq!(&back.as_slice()[..3], b"\xABro", "written on the far host, copied back");
        }
        other => panic!("expected the buffer's answer, got {other:?}\nhost far:\n{}", far.log()),
    }
    for i in 0..100 {
        here.post_message(Message::json(&i).unwrap()).unwrap();
    }
    for i in 0..100 {
        match here.recv_blocking() {
            Some(PortEvent::Message(message)) => assert_eq!(message.decode_json::<i32>().unwrap(), i),
            other => panic!("expected echo {i}, got {other:?}\nhost far:\n{}", far.log()),
        }
    }
    // Closing this end closes the far one: the child says so, through the relay here.
    here.close();
    match worker.recv_blocking() {
        Some(WorkerEvent::Message(message)) => {
            let answer: serde_json::Value = message.decode_json().unwrap();
            assert!(answer.get("port-closed").is_some(), "{answer}");
        }
        other => panic!("expected the port's close, got {other:?}"),
    }
    worker.terminate();
    let placed: Vec<_> = host.stats().into_iter().filter_map(|report| report.host).collect();
    assert_eq!(placed, ["far"], "the child ran on the far host");
}

#[test]
fn a_manifests_entry_runs_on_the_host_it_names_and_places_its_own_children() {
    let server = Server::start("entry");
    let dir = temp_dir("lattice-entry");
    let one = LatticeHost::start(&server, "entry", "one", &dir.join("one"));
    let two = LatticeHost::start(&server, "entry", "two", &dir.join("two"));
    wait_for_hosts(&server, "entry", &["one", "two"], &[&one, &two]);
    // The entry runs on `one`; stdin and stdout stay here. From there it places its first
    // counter on `two` and keeps its second on `one`, and moves a port between them.
    let manifest = dir.join("mover.toml");
    std::fs::write(
        &manifest,
        format!(
            "entry = \"mover\"\n\n[workers.mover]\ncomponent = {:?}\nhost = \"one\"\n",
            guest_build::guest("port-mover")
        ),
    )
    .unwrap();
    let manifest = manifest.display().to_string();
    let job = r#"{"n": 20000, "first": "two"}"#;
    let output =
        wasm_workers(&["run", &manifest, "--nats", &server.url, "--lattice", "entry", "--stats"], &format!("{job}\n"));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}\nhost one:\n{}\nhost two:\n{}", one.log(), two.log());
    let report: serde_json::Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    let counted = report["first"]["count"].as_u64().unwrap() + report["second"]["count"].as_u64().unwrap();
    assert_eq!(counted, 20000, "{report}");
    assert_eq!(report["second"]["in-order"], true, "{report}");
    let stats = |name: &str| stderr.lines().find(|line| line.starts_with(name)).unwrap_or_default().to_string();
    assert!(stats("mover ").contains(" one "), "{stderr}");
    // The lattice placed the mover on `one`, and from there its first counter on `two` (found
    // at the mover's origin, here, beside the mover's component); its second is its own, on
    // `one`.
    let lattice = watch(&server, "entry");
    support::wait_until(|| {
        let started: Vec<(String, u64)> = lattice.hosts().unwrap().into_iter().map(|h| (h.id, h.started)).collect();
        started == [("one".to_string(), 1), ("two".to_string(), 1)]
    });
    // Without a lattice, the same manifest runs here.
    let output = wasm_workers(&["run", &manifest, "--stats"], &format!("{job}\n"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).lines().any(|line| line.starts_with("mover ") && line.contains("(here)")));
}

#[test]
fn a_worker_the_host_program_places_gets_its_channels_linked_and_its_room_from_its_host() {
    use wasm_workers::{Host, Limits, Message, Placement, PortEvent, WorkerEvent, WorkerOptions};
    let server = Server::start("root");
    let dir = temp_dir("lattice-root");
    let far = LatticeHost::start(&server, "root", "far", &dir.join("far"));
    wait_for_hosts(&server, "root", &["far"], &[&far]);
    let host = Host::new().unwrap();
    watch(&server, "root").place_from(&host).unwrap();
    let bridge = host.load(guest_build::guest("port-bridge")).unwrap();
    let (mut here, there) = wasm_workers::channel();
    let options = WorkerOptions {
        placement: Some(Placement::Host("far".into())),
        channels: vec![("peer".into(), there)],
        limits: Limits { queued_messages: Some(8), ..Limits::default() },
        ..WorkerOptions::named("bridge")
    };
    let mut worker = host.spawn(&bridge, options).unwrap();
    assert_eq!(worker.host().as_deref(), Some("far"));
    // Its parent's messages go out on its channel; what arrives on the channel comes back.
    worker.post_message(Message::json(&"to the port").unwrap()).unwrap();
    match here.recv_blocking() {
        Some(PortEvent::Message(message)) => assert_eq!(message.decode_json::<String>().unwrap(), "to the port"),
        other => panic!("expected the bridged message, got {other:?}\nhost far:\n{}", far.log()),
    }
    here.post_message(Message::json(&"to the parent").unwrap()).unwrap();
    match worker.recv_blocking() {
        Some(WorkerEvent::Message(message)) => assert_eq!(message.decode_json::<String>().unwrap(), "to the parent"),
        other => panic!("expected the bridged message, got {other:?}"),
    }
    // Its queue's limit holds across: past its window, posts are refused as full, and its
    // room comes back from its host.
    let mut refused = 0;
    for i in 0..64 {
        if let Err(error) = worker.try_post_message(Message::json(&i).unwrap()) {
            assert_eq!(error.reason, wasm_workers::DropReason::QueueFull);
            refused += 1;
        }
    }
    assert!(refused > 0, "a window of 8 took 64 posts at once");
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(worker.room().wait(1));
    worker.try_post_message(Message::json(&"after the wait").unwrap()).unwrap();
    // Closing the port here closes the worker's, and the bridge closes.
    here.close();
    loop {
        match worker.recv_blocking() {
            Some(WorkerEvent::Message(_)) => {}
            Some(WorkerEvent::Closed(_)) => break,
            other => panic!("expected the bridge to close, got {other:?}\nhost far:\n{}", far.log()),
        }
    }
}

#[test]
fn a_worker_placed_on_another_host_is_granted_nothing_of_this_one() {
    let dir = temp_dir("lattice-grants");
    let manifest = dir.join("granted.toml");
    std::fs::write(
        &manifest,
        format!(
            "entry = \"echo\"\n\n[workers.echo]\ncomponent = {:?}\nhost = \"far\"\nenv = {{ SECRET = \"1\" }}\n",
            guest_build::guest("echo")
        ),
    )
    .unwrap();
    let output = wasm_workers(&["run", &manifest.display().to_string()], "");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("granted nothing of this one"), "{}", text(&output.stderr));
}

#[test]
fn three_hosts_racing_for_one_shared_worker_name_get_one_instance_and_its_hosts_death_frees_the_name() {
    use wasm_workers::{Host, Message, Placement, WorkerEvent, WorkerHandle, WorkerOptions};
    let server = Server::start("shared");
    let dir = temp_dir("lattice-shared");
    let mut hosts: Vec<(String, LatticeHost)> = ["a", "b", "c"]
        .into_iter()
        .map(|id| (id.to_string(), LatticeHost::start(&server, "shared", id, &dir.join(id))))
        .collect();
    let all: Vec<&LatticeHost> = hosts.iter().map(|(_, host)| host).collect();
    wait_for_hosts(&server, "shared", &["a", "b", "c"], &all);
    let host = Host::new().unwrap();
    watch(&server, "shared").place_from(&host).unwrap();
    let client = host.load(guest_build::guest("shared-client")).unwrap();
    let connect = serde_json::json!({ "location": "shared_hello.wasm", "name": "hello" });
    let place = |on: &str| {
        let options = WorkerOptions { placement: Some(Placement::Host(on.into())), ..WorkerOptions::named(on) };
        host.spawn(&client, options).unwrap()
    };
    let greeting = |worker: &mut WorkerHandle| match worker.recv_blocking() {
        Some(WorkerEvent::Message(message)) => {
            let answer: serde_json::Value = message.decode_json().unwrap();
            let text = answer["shared"].as_str().unwrap_or_else(|| panic!("{answer}")).to_string();
            text.rsplit('#').next().unwrap().parse::<u32>().unwrap()
        }
        other => panic!("expected a greeting, got {other:?}"),
    };
    // All three are started first, then all three connect at once.
    let mut clients: Vec<(String, WorkerHandle)> =
        ["a", "b", "c"].into_iter().map(|on| (on.to_string(), place(on))).collect();
    for (_, worker) in &clients {
        worker.post_message(Message::json(&connect).unwrap()).unwrap();
    }
    let mut numbers: Vec<(u32, String)> =
        clients.iter_mut().map(|(on, worker)| (greeting(worker), on.clone())).collect();
    numbers.sort();
    assert_eq!(
        numbers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2, 3],
        "one instance, three connections: {numbers:?}"
    );
    // The instance runs where the first connection came from. Its host dies: the name is
    // free, and the next connect starts a new instance on another host.
    let owner = numbers[0].1.clone();
    let at = hosts.iter().position(|(id, _)| *id == owner).unwrap();
    drop(hosts.remove(at));
    let survivor = hosts[0].0.clone();
    let mut again = place(&survivor);
    again.post_message(Message::json(&connect).unwrap()).unwrap();
    assert_eq!(greeting(&mut again), 1, "a new instance, on `{survivor}`");
    for (_, worker) in &clients {
        worker.terminate();
    }
    again.terminate();
}

#[test]
fn a_nats_server_restart_mid_run_keeps_the_accounting_exact() {
    use wasm_workers::{DropReason, Host, Message, Placement, WorkerEvent, WorkerOptions};
    let mut server = Server::start("restart");
    let dir = temp_dir("lattice-restart");
    let far = LatticeHost::start(&server, "restart", "far", &dir.join("far"));
    wait_for_hosts(&server, "restart", &["far"], &[&far]);
    let host = Host::new().unwrap();
    let lattice = watch(&server, "restart");
    lattice.place_from(&host).unwrap();
    let echo = host.load(guest_build::guest("echo")).unwrap();
    let options = WorkerOptions { placement: Some(Placement::Host("far".into())), ..WorkerOptions::named("echo") };
    let mut worker = host.spawn(&echo, options).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (n, mut echoed, mut refused, mut ended) = (20_000u64, 0u64, 0u64, None);
    let mut drain = |worker: &mut wasm_workers::WorkerHandle, ended: &mut Option<WorkerEvent>| {
        while let Some(event) = worker.try_recv() {
            match event {
                WorkerEvent::Message(_) => echoed += 1,
                other => *ended = Some(other),
            }
        }
    };
    for i in 0..n {
        if i == n / 2 {
            // Mid-run, the server goes away and comes back.
            server.restart();
        }
        loop {
            match worker.try_post_message(Message::json(&i).unwrap()) {
                Ok(()) => break,
                Err(error) if error.reason == DropReason::QueueFull => {
                    drain(&mut worker, &mut ended);
                    runtime.block_on(worker.room().wait(1));
                }
                Err(_) => {
                    refused += 1;
                    break;
                }
            }
            if ended.is_some() {
                break;
            }
        }
        drain(&mut worker, &mut ended);
        if ended.is_some() {
            break;
        }
    }
    worker.terminate();
    while let Some(event) = worker.recv_blocking() {
        match event {
            WorkerEvent::Message(_) => echoed += 1,
            other => ended = Some(other),
        }
    }
    // Nothing in flight here; summed with the far host's ledger once it has settled (its
    // worker has ended, and what it counts no longer changes), posted = delivered + dropped.
    drop(worker);
    let counts = host.message_counts();
    assert_eq!(counts.in_flight(), 0, "{counts:?}");
    let mut settled = None;
    support::wait_until(|| {
        let info = lattice.hosts().unwrap().into_iter().find(|info| info.id == "far");
        let done = info
            .as_ref()
            .is_some_and(|info| info.started == 1 && info.running == 0 && info.posted == info.delivered + info.dropped);
        settled = info;
        done
    });
    // The far host reconnected: its advertisement after the restart says it ran the worker.
    let far = settled.unwrap();
    assert_eq!(
        counts.posted + far.posted,
        counts.delivered + far.delivered + counts.dropped.total() + far.dropped,
        "here: {counts:?}, far: {far:?}"
    );
    // What the restart lost is never silent: it ended the link with an error saying so, and
    // the side it was due at counted it as link-lost.
    match &ended {
        Some(WorkerEvent::Error(error)) if error.message.contains("from host `far` were lost") => {
            assert!(counts.dropped.link_lost > 0, "{counts:?}")
        }
        Some(WorkerEvent::Error(error)) => assert!(
            error.message.contains("lost in transit") || error.message.contains("stopped answering"),
            "{error:?}"
        ),
        // Nothing lost: every message came back, but the last ones ended by the terminate.
        _ => assert!(echoed + refused + 8192 >= n, "echoed {echoed}, refused {refused}, ended {ended:?}"),
    }
}

#[test]
fn on_a_cluster_of_three_servers_the_lattice_outlives_the_loss_of_one() {
    let mut servers = Server::cluster("trio");
    let url = servers[0].url.clone();
    let dir = temp_dir("lattice-cluster");
    let hosts: Vec<LatticeHost> =
        ["a", "b", "c"].into_iter().map(|id| LatticeHost::start(&servers[0], "trio", id, &dir.join(id))).collect();
    let all: Vec<&LatticeHost> = hosts.iter().collect();
    wait_for_hosts(&servers[0], "trio", &["a", "b", "c"], &all);
    // One server goes: the clients on it move to the others, and the buckets (three copies)
    // stay writable with two.
    let lost = servers.remove(0);
    drop(lost);
    let survivor = &servers[0];
    support::wait_until(|| try_live_hosts(survivor, "trio").is_ok_and(|hosts| hosts == ["a", "b", "c"]));
    let manifest = delegation_lattice();
    let output =
        wasm_workers(&["run", &manifest, "--nats", &url, "--lattice", "trio"], "{\"n\": 10000000, \"k\": 6}\n");
    let logs = || hosts.iter().map(|host| host.log()).collect::<Vec<_>>().join("\n---\n");
    assert!(output.status.success(), "{}\nhosts:\n{}", text(&output.stderr), logs());
    assert_eq!(text(&output.stdout).trim(), "664579");
}

#[test]
fn the_librarys_task_pool_spreads_its_workers_over_the_lattice() {
    use wasm_workers::task::{Pool, PoolConfig, TaskError};
    use wasm_workers::{Host, Placement};
    let server = Server::start("tasks");
    let dir = temp_dir("lattice-tasks");
    let a = LatticeHost::start(&server, "tasks", "a", &dir.join("a"));
    let b = LatticeHost::start(&server, "tasks", "b", &dir.join("b"));
    wait_for_hosts(&server, "tasks", &["a", "b"], &[&a, &b]);
    let host = Host::new().unwrap();
    watch(&server, "tasks").place_from(&host).unwrap();
    let lab = host.load(guest_build::guest("task-lab")).unwrap();
    let config =
        PoolConfig { size: Some(4), placement: Some(Placement::Any), name: "lab".into(), ..PoolConfig::default() };
    let pool = Pool::new(&host, &lab, config).unwrap();
    let inputs: Vec<serde_json::Value> = (0..2000).map(|i| serde_json::json!({ "value": i })).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let results: Vec<Result<u64, TaskError>> = runtime.block_on(pool.par_map(inputs));
    assert_eq!(results, (0..2000).map(Ok).collect::<Vec<_>>());
    let mut placed: Vec<String> = host.stats().into_iter().filter_map(|report| report.host).collect();
    placed.sort();
    placed.dedup();
    assert_eq!(placed, ["a", "b"], "the pool's four workers are spread over both hosts");
}

#[test]
fn a_server_that_wants_a_token_takes_hosts_that_give_it_and_refuses_others() {
    let dir = temp_dir("nats-token");
    let auth = ["--auth".to_string(), "s3cret".to_string()];
    let (child, port) = Server::spawn_with(&dir, None, &auth, None);
    let server = Server { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir.clone(), port };
    let host = LatticeHost::start_with(&server, "token", "a", &dir.join("a"), &["--nats-token", "s3cret"]);
    host.joined.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| panic!("the host did not join:\n{}", host.log()));
    let with = wasm_workers(&["hosts", "--nats", &server.url, "--lattice", "token", "--nats-token", "s3cret"], "");
    assert!(with.status.success(), "{}", text(&with.stderr));
    assert_eq!(text(&with.stdout).lines().nth(1).and_then(|line| line.split_whitespace().next()), Some("a"));
    let without = wasm_workers(&["hosts", "--nats", &server.url, "--lattice", "token"], "");
    assert!(!without.status.success());
    let error = text(&without.stderr);
    assert!(error.contains("cannot connect") && error.lines().count() == 1, "{error}");
}

#[test]
fn a_port_whose_other_end_is_on_a_host_that_dies_closes_within_three_seconds() {
    use wasm_workers::{Host, Placement, PortEvent, WorkerOptions};
    let server = Server::start("dies");
    let dir = temp_dir("lattice-dies");
    let far = LatticeHost::start(&server, "dies", "far", &dir.join("far"));
    wait_for_hosts(&server, "dies", &["far"], &[&far]);
    let host = Host::new().unwrap();
    watch(&server, "dies").place_from(&host).unwrap();
    let bridge = host.load(guest_build::guest("port-bridge")).unwrap();
    let (mut here, there) = wasm_workers::channel();
    let options = WorkerOptions {
        placement: Some(Placement::Host("far".into())),
        channels: vec![("peer".into(), there)],
        ..WorkerOptions::named("bridge")
    };
    let mut worker = host.spawn(&bridge, options).unwrap();
    // The link is up: a message goes there and back.
    worker.post_message(wasm_workers::Message::json(&"up").unwrap()).unwrap();
    assert!(matches!(here.recv_blocking(), Some(PortEvent::Message(_))));
    let killed = std::time::Instant::now();
    drop(far);
    assert!(matches!(here.recv_blocking(), Some(PortEvent::Closed)), "the port closes");
    assert!(killed.elapsed() < Duration::from_secs(3), "closed after {:?}", killed.elapsed());
    assert!(matches!(worker.recv_blocking(), Some(wasm_workers::WorkerEvent::Error(_))), "its parent is told too");
}

#[test]
fn a_spawn_request_naming_its_worker_with_a_wildcard_is_refused() {
    let server = Server::start("wildcard");
    let dir = temp_dir("lattice-wildcard");
    let far = LatticeHost::start(&server, "wildcard", "far", &dir.join("far"));
    wait_for_hosts(&server, "wildcard", &["far"], &[&far]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = runtime.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        // A worker named `*` would have the host subscribe to every worker's messages.
        let request = serde_json::json!({
            "uid": "*", "component": "0".repeat(64), "location": "x.wasm", "name": "x",
            "limits": {}, "from": "snoop", "origin": ["snoop", "0"]
        });
        let reply = client
            .request("wasm-workers.wildcard.host.far.spawn", serde_json::to_vec(&request).unwrap().into())
            .await
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
    });
    assert!(answer["error"].as_str().is_some_and(|error| error.contains("unreadably")), "{answer}");
}

#[test]
fn across_hosts_a_messages_buffers_count_with_its_data_against_the_receivers_size() {
    use wasm_workers::{Buffer, DropReason, Host, Limits, Message, Placement, WorkerOptions};
    let server = Server::start("sizes");
    let dir = temp_dir("lattice-sizes");
    let far = LatticeHost::start(&server, "sizes", "far", &dir.join("far"));
    wait_for_hosts(&server, "sizes", &["far"], &[&far]);
    let host = Host::new().unwrap();
    watch(&server, "sizes").place_from(&host).unwrap();
    let echo = host.load(guest_build::guest("echo")).unwrap();
    let options = WorkerOptions {
        placement: Some(Placement::Host("far".into())),
        limits: Limits { message_size: Some(1024), ..Limits::default() },
        ..WorkerOptions::named("echo")
    };
    let worker = host.spawn(&echo, options).unwrap();
    let small = Message::json(&"small").unwrap().with_buffer(Buffer::from_vec(vec![7; 4096]));
    let refused = worker.post_message(small).unwrap_err();
    assert_eq!(refused.reason, DropReason::TooLarge, "refused here, before it travels");
    worker.post_message(Message::json(&"fits").unwrap().with_buffer(Buffer::from_vec(vec![7; 512]))).unwrap();
    worker.terminate();
}

#[test]
fn a_graph_whose_entry_runs_on_another_host_ends_when_the_whole_graph_is_quiet() {
    let server = Server::start("quiet");
    let dir = temp_dir("lattice-quiet");
    let far = LatticeHost::start(&server, "quiet", "far", &dir.join("far"));
    wait_for_hosts(&server, "quiet", &["far"], &[&far]);
    // The chapter's shared-worker demo, with the client on host `far` and the shared worker
    // here: the client holds its port to the shared worker for ever, so the run ends only
    // when every worker on both hosts waits and nothing is on its way between them.
    let manifest = dir.join("hello.toml");
    std::fs::write(
        &manifest,
        format!(
            "entry = \"client\"\n\n[workers.client]\ncomponent = {:?}\nhost = \"far\"\n\n[shared.hello]\ncomponent = {:?}\n\n\
             [[channels]]\na = {{ worker = \"client\", label = \"peer\" }}\nb = {{ shared = \"hello\" }}\n",
            guest_build::guest("port-bridge"),
            guest_build::guest("shared-hello")
        ),
    )
    .unwrap();
    let manifest = manifest.display().to_string();
    let input = "\"ping\"\n\"ping\"\n\"ping\"\n";
    let output = wasm_workers(&["run", &manifest, "--nats", &server.url, "--lattice", "quiet", "--stats"], input);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}\nhost far:\n{}", far.log());
    // Every answer came back before the run ended.
    assert_eq!(
        text(&output.stdout).lines().collect::<Vec<_>>(),
        ["\"Hello World! You are connection #1\"", "\"pong\"", "\"pong\"", "\"pong\""],
        "{stderr}"
    );
    let stats = |name: &str| stderr.lines().find(|line| line.starts_with(name)).unwrap_or_default().to_string();
    assert!(stats("client ").contains(" far "), "{stderr}");
}

#[test]
fn over_tls_a_host_that_trusts_the_servers_certificate_joins_and_one_that_does_not_is_refused() {
    let dir = temp_dir("nats-tls");
    // A certificate authority of the test's own, and the server's certificate for 127.0.0.1.
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl").args(args).current_dir(&dir).output().expect("openssl runs");
        assert!(output.status.success(), "openssl {args:?}: {}", text(&output.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wasm-workers test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    let tls = ["--tls", "--tlscert", "server.pem", "--tlskey", "server.key"].map(|arg| match arg {
        "server.pem" | "server.key" => dir.join(arg).display().to_string(),
        other => other.to_string(),
    });
    let (child, port) = Server::spawn_with(&dir, None, &tls, None);
    let server = Server { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir.clone(), port };
    let ca = dir.join("ca.pem").display().to_string();
    let host = LatticeHost::start_with(&server, "tls", "a", &dir.join("a"), &["--nats-tls", "--nats-ca", &ca]);
    host.joined.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| panic!("the host did not join:\n{}", host.log()));
    let trusted =
        wasm_workers(&["hosts", "--nats", &server.url, "--lattice", "tls", "--nats-tls", "--nats-ca", &ca], "");
    assert!(trusted.status.success(), "{}", text(&trusted.stderr));
    assert_eq!(text(&trusted.stdout).lines().nth(1).and_then(|line| line.split_whitespace().next()), Some("a"));
    let untrusted = wasm_workers(&["hosts", "--nats", &server.url, "--lattice", "tls", "--nats-tls"], "");
    assert!(!untrusted.status.success(), "a server whose certificate nobody vouches for is refused");
    assert!(text(&untrusted.stderr).contains("cannot connect"), "{}", text(&untrusted.stderr));
}
