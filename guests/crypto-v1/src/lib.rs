//! The chapter's crypto library, version 1 (10.1.2.6): one worker does all the work.
//!
//! Each request is a message `"genkeys"`, `"encrypt"` or `"decrypt"` with a port:
//! - genkeys: the public key, then the private key, are posted on the port;
//! - encrypt: the first message on the port is the public key, every further one a plaintext,
//!   answered on the port with its ciphertext;
//! - decrypt: likewise with the private key and ciphertexts.
//!
//! Like the chapter's library it also works as a shared worker: each connection's port then
//! takes the same requests.

use wasm_workers_guest::{export_worker, Port, Received, Worker};

#[derive(Default)]
struct CryptoV1;

fn handle_message(request: Received<String>) {
    let Some(port) = request.ports.into_iter().next() else { return };
    match request.data.as_str() {
        "genkeys" => {
            let (public, private) = crypto_stub::generate_key_pair();
            let _ = port.post(&public);
            let _ = port.post(&private);
        }
        "encrypt" => converse(port, crypto_stub::encrypt),
        "decrypt" => converse(port, crypto_stub::decrypt),
        _ => {}
    }
}

/// The first message on `port` is the key; each later one is answered with `f(key, it)`.
fn converse(port: Port, f: fn(&str, &str) -> String) {
    let reply = port.clone();
    let mut key: Option<String> = None;
    port.on_message(move |_: &mut CryptoV1, text: String| match &key {
        None => key = Some(text),
        Some(key) => {
            let _ = reply.post(&f(key, &text));
        }
    });
}

impl Worker for CryptoV1 {
    type Message = Received<String>;

    fn on_message(&mut self, request: Received<String>) {
        handle_message(request);
    }

    fn on_connect(&mut self, port: Port) {
        port.on_message(|_: &mut Self, request: Received<String>| handle_message(request));
    }
}

export_worker!(CryptoV1);
