//! `wasm-workers host` and `wasm-workers hosts`: serving a lattice, and listing its hosts.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use wasm_workers::lattice::{serve, ServeOptions};

use super::{EngineArgs, LatticeArgs, EXIT_OK};

/// Arguments of `wasm-workers host`.
#[derive(clap::Args, Debug)]
pub struct HostArgs {
    #[command(flatten)]
    lattice: LatticeArgs,
    /// This host's id on the lattice [default: the machine's name and this process's id].
    #[arg(long)]
    id: Option<String>,
    /// A label placements can match (`--label zone=a`); repeat for more.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The most workers this host runs for the lattice at once [default: 4 per processor].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_workers: Option<u64>,
    /// Run only this component: its SHA-256 (64 hex digits), or a directory whose `.wasm`
    /// files are the components allowed; repeat for more. Without it, any component the
    /// lattice places here runs.
    #[arg(long = "allow-component", value_name = "SHA256|DIR")]
    allow_components: Vec<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

/// The hashes `--allow-component` names: each a hash, or the `.wasm` files of a directory.
fn allowed(values: &[String]) -> anyhow::Result<std::collections::HashSet<String>> {
    use sha2::{Digest, Sha256};
    let mut hashes = std::collections::HashSet::new();
    for value in values {
        if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            hashes.insert(value.to_ascii_lowercase());
            continue;
        }
        let dir = std::path::Path::new(value);
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("--allow-component {value}: neither a SHA-256 nor a directory"))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "wasm") && path.is_file() {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                hashes.insert(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect());
            }
        }
    }
    Ok(hashes)
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Serves the lattice until Ctrl-C or SIGTERM.
pub fn host(args: HostArgs) -> anyhow::Result<ExitCode> {
    let host = args.engine.host(None, None)?;
    let lattice = args.lattice.connect()?;
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| wasm_workers::lattice::subject_token(&format!("{}-{}", machine_name(), std::process::id())));
    if !wasm_workers::lattice::valid_id(&id) {
        anyhow::bail!("invalid host id `{id}`: use letters, digits, `-` and `_` (at most 64)");
    }
    let cores = host.hardware_concurrency() as u64;
    let max_workers = args.max_workers.unwrap_or(4 * cores) as usize;
    let component_dir = super::default_cache_dir().unwrap_or_else(std::env::temp_dir).join("lattice-components");
    let labels: BTreeMap<String, String> = args.labels.into_iter().collect();
    let allowed = if args.allow_components.is_empty() { None } else { Some(allowed(&args.allow_components)?) };
    let options = ServeOptions { id: id.clone(), labels, max_workers, component_dir, allowed };
    // The workers placed here may place their own children on the lattice (`spawn-placed`).
    lattice.place_from(&host)?;
    eprintln!("wasm-workers: host `{id}` serving lattice `{}` ({max_workers} worker slots)", lattice.name());
    let stop = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    serve(&host, &lattice, options, stop).with_context(|| format!("host `{id}`"))?;
    eprintln!("wasm-workers: host `{id}` left lattice `{}`", lattice.name());
    Ok(ExitCode::from(EXIT_OK))
}

/// Prints the live hosts, one per line.
pub fn hosts(args: &LatticeArgs) -> anyhow::Result<ExitCode> {
    let lattice = args.connect()?;
    let hosts = lattice.hosts()?;
    println!(
        "{:<24} {:>5} {:>6} {:>8} {:>8} {:>10} {:>10} {:>8}  labels",
        "host", "cores", "free", "running", "started", "posted", "delivered", "dropped"
    );
    for host in hosts {
        let labels: Vec<String> = host.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<24} {:>5} {:>6} {:>8} {:>8} {:>10} {:>10} {:>8}  {}",
            host.id,
            host.cores,
            host.free(),
            host.running,
            host.started,
            host.posted,
            host.delivered,
            host.dropped,
            labels.join(",")
        );
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|n| n.trim().to_string()).unwrap_or_else(|_| "host".into())
}
