//! Worker graphs and the CLI verbs around them, run as a user runs them.

mod support;

use std::path::{Path, PathBuf};

use support::{guest, guests_dir, temp_dir, text, wasm_workers, wasm_workers_with_cache};

/// The repository's `graphs/` directory, with the guests built (its manifests point at them).
fn example(name: &str) -> String {
    guests_dir();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    root.join("graphs").join(name).to_str().unwrap().to_string()
}

/// Writes a manifest into `dir` and returns its path.
fn manifest(dir: &Path, toml: &str) -> String {
    let path = dir.join("graph.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_string()
}

/// A guest's path as a TOML string.
fn component(name: &str) -> String {
    guest(name).to_str().unwrap().replace('\\', "/")
}

#[test]
fn the_delegation_graph_counts_primes() {
    let out = wasm_workers(&["run", &example("delegation.toml")], "{\"n\": 1000000, \"k\": 10}\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "78498\n");
}

#[test]
fn the_hello_graph_connects_its_entry_to_the_shared_worker() {
    let out = wasm_workers(&["run", &example("hello.toml")], "\"ping\"\n\"ping\"\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"Hello World! You are connection #1\"\n\"pong\"\n\"pong\"\n");
}

#[test]
fn the_multiviewer_graph_shows_the_map_and_the_chat() {
    let out =
        wasm_workers(&["run", &example("multiviewer.toml")], "{\"send\": \"mov right\"}\n{\"send\": \"txt hi\"}\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        concat!(
            "{\"shared\":\"cfg 0\"}\n",
            "{\"shared\":\"map 1,1,1,0,0,0,1,1,1\"}\n",
            "{\"shared\":\"map 1,1,0,0,0,0,1,1,0\"}\n",
            "{\"shared\":\"txt 0 hi\"}\n",
        )
    );
}

#[test]
fn the_searcher_graph_answers_queries() {
    let out = wasm_workers(&["run", &example("searcher.toml")], "\"goo\"\n\"apple\"\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"GOOG\"\n\"AAPL\"\n");
}

#[test]
fn the_files_graph_grants_exactly_its_directory_args_and_env() {
    let stdin = "{\"read\": \"/data/hello.txt\"}\n\"args\"\n{\"env\": \"GREETING\"}\n{\"env\": \"HOME\"}\n";
    let out = wasm_workers(&["run", &example("files.toml")], stdin);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["text"], "Hello from a granted directory.\n");
    assert_eq!(lines[1]["args"], serde_json::json!(["files", "--greeting"]));
    assert_eq!(lines[2]["value"], "hello");
    assert_eq!(lines[3]["value"], serde_json::Value::Null, "the host's environment is not granted");
}

#[test]
fn a_worker_without_a_granted_dir_cannot_read_what_a_granted_worker_can() {
    let dir = temp_dir("dirs");
    std::fs::create_dir_all(dir.join("secret")).unwrap();
    std::fs::write(dir.join("secret/note.txt"), "for granted eyes only").unwrap();
    let files = component("files");
    let granted = manifest(&dir, &format!(
        "entry = \"files\"\n[workers.files]\ncomponent = \"{files}\"\ndirs = [{{ host = \"secret\", guest = \"/secret\" }}]\n"
    ));
    let request = "{\"read\": \"/secret/note.txt\"}\n";
    let out = wasm_workers(&["run", &granted], request);
    assert!(text(&out.stdout).contains("for granted eyes only"), "{}", text(&out.stdout));

    let denied = dir.join("denied.toml");
    std::fs::write(&denied, format!("entry = \"files\"\n[workers.files]\ncomponent = \"{files}\"\n")).unwrap();
    let out = wasm_workers(&["run", denied.to_str().unwrap()], request);
    let answer = text(&out.stdout);
    assert!(answer.contains("\"error\"") && !answer.contains("granted eyes"), "{answer}");
}

/// Every kind of bad manifest: its error names the file, the line (where there is one) and
/// the key; the exit code is 2; nothing runs.
#[test]
fn every_kind_of_bad_manifest_gives_its_own_error_and_starts_nothing() {
    let dir = temp_dir("bad-manifests");
    let echo = component("echo");
    let not_a_worker = component("not-a-worker");
    let cases: Vec<(&str, String, &str)> = vec![
        ("syntax", "entry = \"a\"\n[workers.a\n".to_string(), ":2: "),
        ("unknown key", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\ncolour = \"blue\"\n"), "unknown field `colour`"),
        ("no entry", format!("[workers.a]\ncomponent = \"{echo}\"\n"), "missing field `entry`"),
        ("entry not a worker", format!("entry = \"b\"\n[workers.a]\ncomponent = \"{echo}\"\n"), ":1: entry: `b` is not a worker"),
        ("duplicate key", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\n[workers.a]\ncomponent = \"{echo}\"\n"), ":4: "),
        (
            "duplicate name",
            format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\nname = \"x\"\n[workers.b]\ncomponent = \"{echo}\"\nname = \"x\"\n"),
            ":7: workers.b.name: `x` is already the name of workers.a",
        ),
        (
            "unknown worker in a channel",
            format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\n[[channels]]\na = {{ worker = \"a\", label = \"l\" }}\nb = {{ worker = \"ghost\", label = \"l\" }}\n"),
            ":6: channels[0].b: unknown worker `ghost`",
        ),
        (
            "unknown shared worker in a channel",
            format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\n[[channels]]\na = {{ worker = \"a\", label = \"l\" }}\nb = {{ shared = \"ghost\" }}\n"),
            ":6: channels[0].b: unknown shared worker `ghost`",
        ),
        (
            "duplicate label",
            format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\n[shared.s]\ncomponent = \"{echo}\"\n[[channels]]\na = {{ worker = \"a\", label = \"l\" }}\nb = {{ shared = \"s\" }}\n[[channels]]\na = {{ worker = \"a\", label = \"l\" }}\nb = {{ shared = \"s\" }}\n"),
            ":10: channels[1].a: worker `a` already has a channel labelled `l`",
        ),
        ("missing component", "entry = \"a\"\n[workers.a]\ncomponent = \"nowhere.wasm\"\n".to_string(), ":3: workers.a.component: no such file"),
        ("not a worker", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{not_a_worker}\"\n"), ":3: workers.a.component: `"),
        ("missing dir", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\ndirs = [{{ host = \"nope\", guest = \"/x\" }}]\n"), ":4: workers.a.dirs: `nope` is not a directory"),
        ("bad size", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\nlimits = {{ memory = \"lots\" }}\n"), ":4: workers.a.limits.memory: `lots` is not a size"),
        ("tiny memory", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\nlimits = {{ memory = 0 }}\n"), ":4: workers.a.limits.memory: 0 bytes is too little"),
        ("bad message size", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\nlimits = {{ message-size = \"huge\" }}\n"), ":4: workers.a.limits.message-size: `huge` is not a size"),
        ("zero deadline", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\nlimits = {{ deadline-ms = 0 }}\n"), "workers.a.limits.deadline-ms: must be at least 1"),
        ("zero queue", format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\nlimits = {{ queued-messages = 0 }}\n"), "workers.a.limits.queued-messages: must be at least 1"),
        (
            "channel end with a stray key",
            format!("entry = \"a\"\n[workers.a]\ncomponent = \"{echo}\"\n[shared.s]\ncomponent = \"{echo}\"\n[[channels]]\na = {{ worker = \"a\", label = \"l\" }}\nb = {{ shared = \"s\", label = \"x\" }}\n"),
            ":8: ",
        ),
    ];
    for (what, toml, expected) in cases {
        let path = manifest(&dir, &toml);
        for verb in ["check", "run"] {
            let out = wasm_workers(&[verb, &path], "\"would be echoed if anything ran\"\n");
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} ({verb}): {stderr}");
            assert!(
                stderr.contains("graph.toml") && stderr.contains(expected),
                "{what} ({verb}): expected `{expected}` in {stderr}"
            );
            assert!(out.stdout.is_empty(), "{what} ({verb}): nothing runs");
        }
    }
    let out = wasm_workers(
        &["check", &manifest(&dir, &format!("entry = \"a\"\n[workers.a]\ncomponent = \"{not_a_worker}\"\n"))],
        "",
    );
    assert!(text(&out.stderr).contains("is not a worker component"), "{}", text(&out.stderr));
}

#[test]
fn check_accepts_every_example_graph() {
    for name in ["delegation.toml", "hello.toml", "multiviewer.toml", "searcher.toml", "files.toml"] {
        let out = wasm_workers(&["check", &example(name)], "");
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(": ok"), "{name}");
    }
}

#[test]
fn a_second_run_takes_its_components_from_the_cache() {
    let cache = temp_dir("cache");
    let graph = example("delegation.toml");
    let stdin = "{\"n\": 1000, \"k\": 2}\n";
    let first = wasm_workers_with_cache(&["run", &graph, "--stats"], stdin, &cache);
    assert!(text(&first.stderr).contains("components: 2 compiled, 0 from the cache"), "{}", text(&first.stderr));
    let second = wasm_workers_with_cache(&["run", &graph, "--stats"], stdin, &cache);
    assert!(text(&second.stderr).contains("components: 0 compiled, 2 from the cache"), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout), "168\n");

    // A corrupt entry is noticed and replaced, never used.
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
    }
    let third = wasm_workers_with_cache(&["run", &graph, "--stats"], stdin, &cache);
    assert!(third.status.success(), "{}", text(&third.stderr));
    assert_eq!(text(&third.stdout), "168\n");
    assert!(text(&third.stderr).contains("components: 2 compiled, 0 from the cache"), "{}", text(&third.stderr));
    let fourth = wasm_workers_with_cache(&["run", &graph, "--stats"], stdin, &cache);
    assert!(text(&fourth.stderr).contains("components: 0 compiled, 2 from the cache"), "{}", text(&fourth.stderr));
}

#[test]
fn stats_print_a_row_per_worker() {
    let out = wasm_workers(&["run", &example("delegation.toml"), "--stats"], "{\"n\": 1000, \"k\": 3}\n");
    let stderr = text(&out.stderr);
    let rows: Vec<&str> = stderr.lines().filter(|l| l.starts_with("delegation") || l.starts_with("core-")).collect();
    assert_eq!(rows.len(), 4, "{stderr}");
    assert!(rows[0].contains("closed"), "{stderr}");
}

#[test]
fn graph_draws_dot_that_parses_and_mermaid() {
    let out = wasm_workers(&["graph", &example("hello.toml"), "--format", "dot"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    let mut parser = layout::gv::DotParser::new(&dot);
    parser.process().unwrap_or_else(|error| panic!("not DOT: {error}\n{dot}"));
    assert!(dot.contains("\"w:client\" -- \"s:hello\""), "{dot}");

    let out = wasm_workers(&["graph", &example("delegation.toml"), "--format", "mermaid"], "");
    let mermaid = text(&out.stdout);
    assert!(mermaid.starts_with("flowchart LR") && mermaid.contains("spawns"), "{mermaid}");
}

#[test]
fn compile_makes_a_precompiled_component_that_runs_only_when_allowed() {
    let dir = temp_dir("compile");
    let output: PathBuf = dir.join("echo.cwasm");
    let out = wasm_workers(&["compile", guest("echo").to_str().unwrap(), "-o", output.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refused = wasm_workers(&["run", output.to_str().unwrap()], "\"hi\"\n");
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--allow-precompiled"));
    let allowed = wasm_workers(&["run", output.to_str().unwrap(), "--allow-precompiled"], "\"hi\"\n");
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert_eq!(text(&allowed.stdout), "\"hi\"\n");
}

#[test]
fn wit_prints_the_world() {
    let out = wasm_workers(&["wit"], "");
    let wit = text(&out.stdout);
    assert!(wit.contains("package wasm-workers:worker@0.1.0;") && wit.contains("world worker"), "{wit}");
}

#[test]
fn limits_from_the_manifest_apply_a_deadline_and_a_queue_bound() {
    let dir = temp_dir("manifest-limits");
    let faulty = component("faulty");
    let path = manifest(
        &dir,
        &format!(
            "entry = \"f\"\n[workers.f]\ncomponent = \"{faulty}\"\nwall-clock = true\n\
             limits = {{ deadline-ms = 100, queued-messages = 10, queued-bytes = \"1 MiB\", message-size = \"64 KiB\" }}\n"
        ),
    );
    let out = wasm_workers(&["run", &path], "\"time\"\n\"loop\"\n");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let seconds: u64 = stdout.lines().next().and_then(|line| line.parse().ok()).unwrap_or(0);
    assert!(seconds > 1_600_000_000, "wall-clock granted: {stdout}");
    assert!(stderr.contains("CPU deadline of 100 ms"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "a worker failed: {stderr}");
}

#[test]
fn graph_wide_limits_apply_to_workers_without_their_own() {
    let dir = temp_dir("graph-limits");
    let faulty = component("faulty");
    let path = manifest(
        &dir,
        &format!(
            "entry = \"f\"\n[limits]\ndeadline-ms = 100\n[workers.f]\ncomponent = \"{faulty}\"\n\
             [workers.g]\ncomponent = \"{faulty}\"\nlimits = {{ deadline-ms = 60000 }}\n"
        ),
    );
    let out = wasm_workers(&["run", &path], "\"loop\"\n");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("CPU deadline of 100 ms"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let bad =
        manifest(&dir, &format!("entry = \"f\"\n[limits]\ndeadline-ms = 0\n[workers.f]\ncomponent = \"{faulty}\"\n"));
    let out = wasm_workers(&["check", &bad], "");
    assert!(text(&out.stderr).contains(":1: limits.deadline-ms: must be at least 1"), "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(2));
}
