//! The manifest: reading and checking it, before anything starts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::host::Host;
use crate::limits::Limits;
use crate::worker::Placement;

use super::start::Graph;

/// A manifest that is not valid: where, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ManifestError {
    /// The manifest file.
    pub file: PathBuf,
    /// The line the error is on, when it is about one place.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

/// A parsed manifest. Paths in it are relative to the manifest's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// The key of the entry worker.
    pub(super) entry: Spanned<String>,
    #[serde(default)]
    pub(super) workers: BTreeMap<String, WorkerEntry>,
    #[serde(default)]
    pub(super) shared: BTreeMap<String, SharedEntry>,
    #[serde(default)]
    pub(super) channels: Vec<ChannelEntry>,
    /// Limits for every worker of the graph that does not set its own.
    #[serde(default)]
    pub(super) limits: LimitsEntry,
    #[serde(skip)]
    pub(super) file: PathBuf,
    #[serde(skip)]
    pub(super) text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct WorkerEntry {
    pub(super) component: Spanned<String>,
    pub(super) name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) dirs: Vec<DirEntry>,
    #[serde(default)]
    pub(super) limits: LimitsEntry,
    #[serde(default)]
    pub(super) spawns: Vec<String>,
    /// Where the workers it spawns run, when the graph runs on a lattice.
    pub(super) place_spawns: Option<Spanned<PlacementEntry>>,
    /// The lattice host it runs on, when the graph runs on a lattice.
    pub(super) host: Option<Spanned<String>>,
    /// The labels of the lattice host it runs on, when the graph runs on a lattice.
    pub(super) labels: Option<Spanned<BTreeMap<String, String>>>,
    /// Whether it may read the time of day.
    #[serde(default)]
    pub(super) wall_clock: bool,
}

/// A placement: `"any"`, `{ host = "ID" }` or `{ labels = { k = "v" } }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum PlacementEntry {
    Word(String),
    Table { host: Option<String>, labels: Option<BTreeMap<String, String>> },
}

impl WorkerEntry {
    /// Where the worker itself runs on a lattice (`host =` or `labels =`); `None`: here.
    pub(super) fn placement(&self) -> Option<Placement> {
        match (&self.host, &self.labels) {
            (Some(host), _) => Some(Placement::Host(host.get_ref().clone())),
            (None, Some(labels)) => Some(Placement::Labels(labels.get_ref().clone())),
            (None, None) => None,
        }
    }
}

impl PlacementEntry {
    pub(super) fn placement(&self) -> Result<Placement, String> {
        match self {
            PlacementEntry::Word(word) if word == "any" => Ok(Placement::Any),
            PlacementEntry::Table { host: Some(host), labels: None } => Ok(Placement::Host(host.clone())),
            PlacementEntry::Table { host: None, labels: Some(labels) } => Ok(Placement::Labels(labels.clone())),
            _ => Err("expected \"any\", { host = \"ID\" } or { labels = { key = \"value\" } }".to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct DirEntry {
    pub(super) host: Spanned<String>,
    pub(super) guest: String,
    #[serde(default)]
    pub(super) read_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LimitsEntry {
    pub(super) memory: Option<Spanned<Size>>,
    pub(super) table_elements: Option<usize>,
    pub(super) instances: Option<usize>,
    pub(super) children: Option<usize>,
    pub(super) queued_messages: Option<usize>,
    pub(super) queued_bytes: Option<Spanned<Size>>,
    pub(super) message_size: Option<Spanned<Size>>,
    /// CPU milliseconds per task.
    pub(super) deadline_ms: Option<u64>,
}

impl LimitsEntry {
    /// Checks the limits found at key `at`; `span` places errors about values without a
    /// place of their own.
    fn check(&self, manifest: &Manifest, at: &str, span: std::ops::Range<usize>) -> Result<(), ManifestError> {
        if let Some(memory) = &self.memory {
            let bytes = memory
                .get_ref()
                .bytes()
                .map_err(|why| manifest.error(Some(memory.span()), format!("{at}.memory: {why}")))?;
            // One wasm page, and what a Rust guest needs to start (its stack alone is 1 MiB).
            if bytes < 2 << 20 {
                return Err(manifest.error(
                    Some(memory.span()),
                    format!("{at}.memory: {bytes} bytes is too little for a worker to start (at least 2 MiB)"),
                ));
            }
        }
        for (what, size) in [("queued-bytes", &self.queued_bytes), ("message-size", &self.message_size)] {
            if let Some(size) = size {
                size.get_ref()
                    .bytes()
                    .map_err(|why| manifest.error(Some(size.span()), format!("{at}.{what}: {why}")))?;
            }
        }
        for (what, value) in [
            ("instances", self.instances),
            ("table-elements", self.table_elements),
            ("queued-messages", self.queued_messages),
            ("deadline-ms", self.deadline_ms.map(|ms| ms as usize)),
        ] {
            if value == Some(0) {
                return Err(manifest.error(Some(span.clone()), format!("{at}.{what}: must be at least 1")));
            }
        }
        Ok(())
    }

    /// The limits, once [`check`](Self::check)ed.
    pub(super) fn limits(&self) -> Limits {
        let bytes =
            |size: &Option<Spanned<Size>>| size.as_ref().and_then(|s| s.get_ref().bytes().ok()).map(|b| b as usize);
        Limits {
            memory: bytes(&self.memory),
            table_elements: self.table_elements,
            instances: self.instances,
            children: self.children,
            queued_messages: self.queued_messages,
            queued_bytes: bytes(&self.queued_bytes),
            message_size: bytes(&self.message_size),
            deadline: self.deadline_ms.map(std::time::Duration::from_millis),
        }
    }
}

/// A size in bytes: a number, or a string like `"64 MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Size {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SharedEntry {
    pub(super) component: Spanned<String>,
    /// Its own limits; the graph's fill in what they leave open.
    #[serde(default)]
    pub(super) limits: LimitsEntry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ChannelEntry {
    pub(super) a: Spanned<End>,
    pub(super) b: Spanned<End>,
}

#[derive(Debug, Deserialize)]
#[serde(try_from = "EndEntry")]
pub(super) enum End {
    Worker { worker: String, label: String },
    Shared { shared: String },
}

/// A channel end as written: `{ worker, label }` or `{ shared }`, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EndEntry {
    pub(super) worker: Option<String>,
    pub(super) label: Option<String>,
    pub(super) shared: Option<String>,
}

impl TryFrom<EndEntry> for End {
    type Error = String;

    fn try_from(end: EndEntry) -> Result<End, String> {
        match end {
            EndEntry { worker: Some(worker), label: Some(label), shared: None } => Ok(End::Worker { worker, label }),
            EndEntry { worker: None, label: None, shared: Some(shared) } => Ok(End::Shared { shared }),
            _ => Err("a channel end is `{ worker = \"...\", label = \"...\" }` or `{ shared = \"...\" }`".to_string()),
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Worker { worker, label } => write!(f, "{worker}:{label}"),
            End::Shared { shared } => write!(f, "shared {shared}"),
        }
    }
}

impl Size {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(text) => parse_size(text),
        }
    }
}

/// A size in bytes written as a manifest writes it: `"64 MiB"`, `"512KiB"`, `"1000"` (units
/// B, KiB, MiB, GiB).
///
/// # Errors
///
/// A description of what is wrong with `text`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{text}` is not a size like \"64 MiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit `{other}` (use B, KiB, MiB or GiB)")),
    };
    number.checked_mul(scale).ok_or_else(|| format!("`{text}` is too large"))
}

impl Manifest {
    /// Reads and parses the manifest at `path`: its syntax and its fields, nothing else.
    ///
    /// # Errors
    ///
    /// [`ManifestError`] if it cannot be read, is not TOML, or has unknown or mistyped keys.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        use std::io::Read;
        let error = |message: String| ManifestError { file: path.to_path_buf(), line: None, message };
        let file = std::fs::File::open(path).map_err(|e| error(format!("cannot read the manifest: {e}")))?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(error("cannot read the manifest: it is not a regular file".to_string()));
        }
        let mut text = String::new();
        file.take(MAX_MANIFEST_SIZE + 1)
            .read_to_string(&mut text)
            .map_err(|e| error(format!("cannot read the manifest: {e}")))?;
        if text.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(error(format!("cannot read the manifest: it is larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        Manifest::parse(&text, path)
    }

    /// Parses `text` as the manifest at `file` (which names it in errors, and against whose
    /// directory its paths resolve): its syntax and its fields, nothing else. It reads no file.
    ///
    /// # Errors
    ///
    /// [`ManifestError`] if `text` is not TOML, or has unknown or mistyped keys.
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|error| ManifestError {
            file: file.to_path_buf(),
            line: error.span().map(|span| line_of(text, span.start)),
            message: error.message().trim().to_string(),
        })?;
        manifest.file = file.to_path_buf();
        manifest.text = text.to_string();
        Ok(manifest)
    }

    fn error(&self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.clone(),
            line: span.map(|span| line_of(&self.text, span.start)),
            message: message.into(),
        }
    }

    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        self.file.parent().unwrap_or(Path::new("")).join(path)
    }

    /// Checks what needs neither the filesystem nor the engine: that the entry is a worker,
    /// that worker names are unique, the limits, and that every channel end names a known
    /// worker or shared worker (a worker's labels unique). [`check`](Self::check) does this
    /// first.
    ///
    /// # Errors
    ///
    /// The first problem found, with its line and key.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !self.workers.contains_key(self.entry.get_ref()) {
            return Err(self.error(
                Some(self.entry.span()),
                format!(
                    "entry: `{}` is not a worker of this graph (workers: {})",
                    self.entry.get_ref(),
                    keys(&self.workers)
                ),
            ));
        }
        self.limits.check(self, "limits", self.entry.span())?;
        let mut names = HashMap::new();
        for (key, worker) in &self.workers {
            let name = worker.name.as_ref().map_or(key.as_str(), |n| n.get_ref().as_str());
            if let Some(other) = names.insert(name.to_string(), key.clone()) {
                let span = worker.name.as_ref().map_or(worker.component.span(), |n| n.span());
                return Err(self.error(
                    Some(span),
                    format!("workers.{key}.name: `{name}` is already the name of workers.{other}"),
                ));
            }
            worker.limits.check(self, &format!("workers.{key}.limits"), worker.component.span())?;
            if let Some(place) = &worker.place_spawns {
                place
                    .get_ref()
                    .placement()
                    .map_err(|why| self.error(Some(place.span()), format!("workers.{key}.place-spawns: {why}")))?;
            }
            if let (Some(host), Some(_)) = (&worker.host, &worker.labels) {
                return Err(self
                    .error(Some(host.span()), format!("workers.{key}: `host` and `labels` both place it; keep one")));
            }
            let placed = worker.host.as_ref().map(|h| h.span()).or(worker.labels.as_ref().map(|l| l.span()));
            let granted =
                worker.wall_clock || !worker.args.is_empty() || !worker.env.is_empty() || !worker.dirs.is_empty();
            if let (Some(span), true) = (placed, granted) {
                return Err(self.error(
                    Some(span),
                    format!(
                        "workers.{key}: a worker placed on another host is granted nothing of this one \
                         (remove its dirs, env, args and wall-clock, or its host or labels)"
                    ),
                ));
            }
        }
        for (key, shared) in &self.shared {
            shared.limits.check(self, &format!("shared.{key}.limits"), shared.component.span())?;
        }
        let mut labels = HashSet::new();
        for (i, channel) in self.channels.iter().enumerate() {
            for (side, end) in [("a", &channel.a), ("b", &channel.b)] {
                let known = match end.get_ref() {
                    End::Worker { worker, label } => {
                        if !labels.insert((worker.clone(), label.clone())) {
                            return Err(self.error(
                                Some(end.span()),
                                format!(
                                    "channels[{i}].{side}: worker `{worker}` already has a channel labelled `{label}`"
                                ),
                            ));
                        }
                        self.workers.contains_key(worker).then_some(()).ok_or(format!(
                            "channels[{i}].{side}: unknown worker `{worker}` (workers: {})",
                            keys(&self.workers)
                        ))
                    }
                    End::Shared { shared } => self.shared.contains_key(shared).then_some(()).ok_or(format!(
                        "channels[{i}].{side}: unknown shared worker `{shared}` (shared: {})",
                        keys(&self.shared)
                    )),
                };
                known.map_err(|message| self.error(Some(end.span()), message))?;
            }
        }
        Ok(())
    }

    /// Checks everything that can be checked before starting: first what
    /// [`validate`](Self::validate) checks, then the directories, and that every component
    /// loads as a worker (compiling it, or taking it from the cache).
    ///
    /// # Errors
    ///
    /// The first problem found, with its line and key.
    pub fn check(self, host: &Host) -> Result<Graph, ManifestError> {
        self.validate()?;
        for (key, worker) in &self.workers {
            for dir in &worker.dirs {
                if !self.resolve(dir.host.get_ref()).is_dir() {
                    return Err(self.error(
                        Some(dir.host.span()),
                        format!("workers.{key}.dirs: `{}` is not a directory", dir.host.get_ref()),
                    ));
                }
            }
        }
        let mut components = HashMap::new();
        let entries = self.workers.iter().map(|(k, w)| (format!("workers.{k}"), &w.component));
        let shared = self.shared.iter().map(|(k, s)| (format!("shared.{k}"), &s.component));
        for (key, component) in entries.chain(shared) {
            let path = self.resolve(component.get_ref());
            if !path.exists() {
                return Err(
                    self.error(Some(component.span()), format!("{key}.component: no such file `{}`", path.display()))
                );
            }
            let loaded = host
                .load(&path)
                .map_err(|error| self.error(Some(component.span()), format!("{key}.component: {error}")))?;
            components.insert(key, loaded);
        }
        Ok(Graph { manifest: self, components })
    }
}

/// The largest manifest [`Manifest::read`] reads: 1 MiB.
const MAX_MANIFEST_SIZE: u64 = 1 << 20;

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn keys<T>(map: &BTreeMap<String, T>) -> String {
    if map.is_empty() {
        return "none".to_string();
    }
    map.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}
