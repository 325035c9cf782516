//! The chapter's crypto library, version 2 (10.1.2.6): the same protocol as version 1, but
//! every request is handed to a sub-worker (`crypto_v2_sub.wasm`) by transferring its port,
//! so the sub-worker answers the caller directly and the caller cannot tell the difference.

use serde_json::json;
use wasm_workers_guest::{export_worker, Child, Port, Received, Transfer, Worker};

#[derive(Default)]
struct CryptoV2 {
    subs: Vec<Child<CryptoV2>>,
}

impl CryptoV2 {
    fn handle_message(&mut self, request: Received<String>) {
        let Some(port) = request.ports.into_iter().next() else { return };
        match request.data.as_str() {
            "genkeys" => self.hand_over(json!({ "role": "generator" }), &port),
            // The sub-worker needs the key, which is the first message on the port.
            role @ ("encrypt" | "decrypt") => {
                let role = if role == "encrypt" { "encryptor" } else { "decryptor" };
                let handed = port.clone();
                port.on_message(move |this: &mut Self, key: String| {
                    this.hand_over(json!({ "role": role, "key": key }), &handed);
                });
            }
            _ => {}
        }
    }

    /// Starts a sub-worker and transfers `port` to it with `job`; messages already waiting at
    /// the port travel with it.
    fn hand_over(&mut self, job: serde_json::Value, port: &Port) {
        let name = format!("crypto-v2-{}", job["role"].as_str().unwrap_or("sub"));
        match Child::spawn("crypto_v2_sub.wasm", Some(&name)) {
            Ok(sub) => {
                let _ = sub.post_with(&job, Transfer::new().port(port));
                self.subs.push(sub);
            }
            Err(error) => eprintln!("cannot start a crypto sub-worker: {error}"),
        }
    }
}

impl Worker for CryptoV2 {
    type Message = Received<String>;

    fn on_message(&mut self, request: Received<String>) {
        self.handle_message(request);
    }

    fn on_connect(&mut self, port: Port) {
        port.on_message(|this: &mut Self, request: Received<String>| this.handle_message(request));
    }
}

export_worker!(CryptoV2);
