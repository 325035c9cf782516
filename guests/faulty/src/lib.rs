//! Misbehaves on request, for the tests. Each message is a command:
//! `"panic"` panics in the handler, `"unreachable"` executes `unreachable`, `"overflow"`
//! recurses until the stack is exhausted, `"loop"` posts `"looping"` and never returns, `"bad-json"` posts bytes
//! labelled JSON that are not JSON, `"bad-postcard"` posts postcard bytes to a JSON reader,
//! and anything else is echoed back.

use wasm_workers_guest::{export_worker, post, post_bytes, post_encoded, Codec, Worker};

#[derive(Default)]
struct Faulty;

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
        match command.as_str() {
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
            "bad-postcard" => post_encoded(Codec::Postcard, &(7u32, "seven")).expect("postcard encodes a tuple"),
            _ => post(&command),
        }
    }
}

export_worker!(Faulty);
