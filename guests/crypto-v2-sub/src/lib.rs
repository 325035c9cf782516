//! The sub-workers of the chapter's crypto library version 2 (10.1.2.6): the chapter's
//! `libcrypto-v2-generator.js`, `-encryptor.js` and `-decryptor.js` in one component, the role
//! given by the first message: `{"role": "generator"}`, or `{"role": "encryptor" |
//! "decryptor", "key": k}`, with the caller's port. A generator posts the key pair on the port
//! and closes; an encryptor (decryptor) answers every message on the port with its ciphertext
//! (plaintext), and closes when the caller closes the port.

use serde::Deserialize;
use wasm_workers_guest::{close, export_worker, Received, Worker};

#[derive(Deserialize)]
struct Job {
    role: String,
    #[serde(default)]
    key: String,
}

#[derive(Default)]
struct Sub;

impl Worker for Sub {
    type Message = Received<Job>;

    fn on_message(&mut self, message: Received<Job>) {
        let Some(port) = message.ports.into_iter().next() else { return };
        let Job { role, key } = message.data;
        let f: fn(&str, &str) -> String = match role.as_str() {
            "generator" => {
                let (public, private) = crypto_stub::generate_key_pair();
                let _ = port.post(&public);
                let _ = port.post(&private);
                close();
                return;
            }
            "encryptor" => crypto_stub::encrypt,
            "decryptor" => crypto_stub::decrypt,
            _ => return,
        };
        let reply = port.clone();
        port.on_message(move |_: &mut Self, text: String| {
            let _ = reply.post(&f(&key, &text));
        })
        .on_close(|_: &mut Self| close());
    }
}

export_worker!(Sub);
