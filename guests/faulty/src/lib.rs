//! Misbehaves on request, for the tests. Each message is a command:
//! `"panic"` panics in the handler, `"unreachable"` executes `unreachable`, `"overflow"`
//! recurses until the stack is exhausted, `"loop"` posts `"looping"` and never returns, `"bad-json"` posts bytes
//! labelled JSON that are not JSON, `"pretty-json"` posts JSON with line breaks, `"bad-postcard"` posts postcard bytes to a JSON reader,
//! `"memory-bomb"` allocates until it cannot, `"spawn-bomb"` spawns children until it may
//! not and then panics with why, `"flood:N"` posts N messages to its parent (`try_post`) and
//! `"flood-report"` posts how many of them were refused as `{"refused": n, "error": e}`,
//! `"time"` posts the wall clock's seconds since the Unix epoch, and
//! anything else is echoed back.

use wasm_workers_guest::{export_worker, post, post_bytes, post_encoded, try_post, Child, Codec, Worker};

#[derive(Default)]
struct Faulty {
    /// Children spawned by a spawn bomb, kept alive.
    children: Vec<Child<Faulty>>,
    /// Posts refused during the last flood, and the last refusal.
    refused: u64,
    refusal: Option<String>,
}

#[inline(never)]
#[allow(unconditional_recursion, reason = "recursing until the stack is exhausted is the point")]
fn recurse(depth: u64, sink: &mut [u64; 32]) -> u64 {
    let mut local = [depth; 32];
    local[(depth % 32) as usize] ^= sink[0];
    std::hint::black_box(&mut local);
    recurse(depth + 1, &mut local) + local[3]
}

impl Worker for Faulty {
    type Message = String;

    fn on_message(&mut self, command: String) {
        let command = command.as_str();
        match command {
            "panic" => panic!("faulty worker panics on request"),
            "unreachable" => std::process::abort(),
            "overflow" => {
                let total = recurse(0, &mut [0; 32]);
                post(&total);
            }
            "loop" => {
                // Said first, so that a test knows the loop is running when it terminates.
                post(&"looping");
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "bad-json" => post_bytes(Codec::Json, b"{not json".to_vec()).unwrap(),
            "pretty-json" => post_bytes(Codec::Json, b"{\n  \"a\": [1,\n 2]\n}".to_vec()).unwrap(),
            "bad-postcard" => post_encoded(Codec::Postcard, &(7u32, "seven")).expect("postcard encodes a tuple"),
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = vec![0u8; 1 << 20];
                    block[0] = 1;
                    hoard.push(std::hint::black_box(block));
                }
            }
            "spawn-bomb" => loop {
                match Child::spawn("faulty.wasm", Some("bomblet")) {
                    Ok(child) => self.children.push(child),
                    Err(error) => panic!("spawn bomb stopped after {} children: {error}", self.children.len()),
                }
            },
            "time" => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                post(&now.as_secs());
            }
            "flood-report" => {
                let report = serde_json::json!({ "refused": self.refused, "error": self.refusal });
                post(&report);
            }
            command if command.starts_with("flood:") => {
                let count: u64 = command["flood:".len()..].parse().expect("flood:N");
                self.refused = 0;
                for i in 0..count {
                    if let Err(error) = try_post(&i) {
                        self.refused += 1;
                        self.refusal = Some(error.to_string());
                    }
                }
            }
            _ => post(&command),
        }
    }
}

export_worker!(Faulty);
