//! Every example of chapter 10.1.2, run as Rust guests under the host.

mod support;

use serde_json::{json, Value};
use support::*;
use wasm_workers::{channel, Buffer, Message, MessagePort, WorkerHandle};

#[test]
fn image_filter_turns_a_transferred_image_gray_and_transfers_it_back() {
    let (width, height) = (64u32, 32u32);
    let mut image = Buffer::zeroed(u64::from(width * height * 4), u64::MAX).unwrap();
    for (i, px) in image.as_mut_slice().chunks_exact_mut(4).enumerate() {
        px.copy_from_slice(&[(i % 256) as u8, (i * 7 % 256) as u8, (i * 13 % 256) as u8, 255]);
    }
    let at = image.as_slice().as_ptr();
    let mut filter = spawn("image-filter");
    let request = json!({ "width": width, "height": height, "filter": "grayscale" });
    filter.post_message(Message::json(&request).unwrap().with_buffer(image)).unwrap();

    let mut reply = next_message(&mut filter);
    assert_eq!(reply.decode_json::<Value>().unwrap(), request);
    let image = reply.buffers.pop().expect("the image comes back");
    assert_eq!(image.as_slice().as_ptr(), at, "transferred, not copied");
    for (i, px) in image.as_slice().chunks_exact(4).enumerate() {
        let (r, g, b) = ((i % 256) as u32, (i * 7 % 256) as u32, (i * 13 % 256) as u32);
        let y = ((r * 299 + g * 587 + b * 114) / 1000) as u8;
        assert_eq!(px, [y, y, y, 255], "pixel {i}");
    }
}

/// Sends `command` to a viewer worker.
fn tell(viewer: &WorkerHandle, command: Value) {
    post(viewer, command);
}

/// The next thing the viewer heard from the shared worker.
fn heard(viewer: &mut WorkerHandle) -> String {
    let event = next_json(viewer);
    event["shared"].as_str().unwrap_or_else(|| panic!("expected shared-worker traffic, got {event}")).to_string()
}

#[test]
fn multiviewer_shares_the_map_and_chat_and_sets_up_private_chats() {
    let name = "multiviewer-test";
    let mut one = spawn("viewer");
    let mut two = spawn("viewer");
    tell(&one, json!({ "connect": name }));
    // Each viewer sees the 3x3 tiles around (0, 0) of the chapter's 7x7 map, which wraps.
    assert_eq!(heard(&mut one), "cfg 0");
    assert_eq!(heard(&mut one), "map 1,1,1,0,0,0,1,1,1");
    tell(&two, json!({ "connect": name }));
    assert_eq!(heard(&mut two), "cfg 1");
    assert_eq!(heard(&mut two), "map 1,1,1,0,0,0,1,1,1");

    // Viewer one moves right and sets the tile under it: both viewers see it.
    tell(&one, json!({ "send": "mov right" }));
    assert_eq!(heard(&mut one), "map 1,1,0,0,0,0,1,1,0");
    tell(&one, json!({ "send": "set 1" }));
    assert_eq!(heard(&mut one), "map 1,1,0,0,1,0,1,1,0");
    assert_eq!(heard(&mut two), "map 1,1,1,0,0,1,1,1,1");

    // Public chat reaches every viewer.
    tell(&two, json!({ "send": "txt hello all" }));
    assert_eq!(heard(&mut one), "txt 1 hello all");
    assert_eq!(heard(&mut two), "txt 1 hello all");

    // A private chat: the worker hands each viewer one end of a channel of its own.
    tell(&one, json!({ "send": "msg 1" }));
    assert_eq!(heard(&mut one), "msg 1");
    assert_eq!(heard(&mut two), "msg 0");
    tell(&one, json!({ "send": "cnt" }));
    let before = heard(&mut one);
    tell(&one, json!({ "private": "psst" }));
    assert_eq!(next_json(&mut two), json!({ "private": "psst", "with": "0" }));
    tell(&two, json!({ "private": "hi back" }));
    assert_eq!(next_json(&mut one), json!({ "private": "hi back", "with": "1" }));
    // The shared worker received only the "cnt" since the count: the private chat did not
    // pass through it.
    tell(&one, json!({ "send": "cnt" }));
    let after = heard(&mut one);
    let count = |text: &str| text.strip_prefix("cnt ").unwrap().parse::<u64>().unwrap();
    assert_eq!(count(&after), count(&before) + 1);
}

/// The chapter's page script for the crypto library, as a host program: the same code runs
/// against both versions.
fn crypto_client(library: &str) -> (String, String, String, String) {
    let mut crypto = spawn(library);
    let start_conversation = |crypto: &mut WorkerHandle, message: &str| -> MessagePort {
        let (port1, port2) = channel();
        crypto.post_message(Message::json(&message).unwrap().with_port(port2)).unwrap();
        port1
    };
    let string = |value: Value| value.as_str().unwrap().to_string();

    let mut keys = start_conversation(&mut crypto, "genkeys");
    let public = string(next_port_json(&mut keys));
    let private = string(next_port_json(&mut keys));

    let mut encrypt = start_conversation(&mut crypto, "encrypt");
    port_post(&encrypt, json!(public));
    port_post(&encrypt, json!("attack at dawn"));
    let ciphertext = string(next_port_json(&mut encrypt));
    encrypt.close();

    let mut decrypt = start_conversation(&mut crypto, "decrypt");
    port_post(&decrypt, json!(private));
    port_post(&decrypt, json!(ciphertext));
    let plaintext = string(next_port_json(&mut decrypt));
    decrypt.close();
    (public, private, ciphertext, plaintext)
}

#[test]
fn crypto_v1_and_v2_give_the_same_results_to_the_same_client() {
    let v1 = crypto_client("crypto-v1");
    let v2 = crypto_client("crypto-v2");
    assert_eq!(v1, v2);
    let (public, _, ciphertext, plaintext) = v1;
    assert_eq!(ciphertext, format!("encrypted-{public} attack at dawn"));
    assert_eq!(plaintext, "attack at dawn");
}

#[test]
fn crypto_v2_sub_workers_answer_many_messages_on_a_transferred_port() {
    let crypto = spawn("crypto-v2");
    let (mut port1, port2) = channel();
    crypto.post_message(Message::json(&"encrypt").unwrap().with_port(port2)).unwrap();
    port_post(&port1, json!("k"));
    for i in 0..50 {
        port_post(&port1, json!(format!("m{i}")));
    }
    for i in 0..50 {
        assert_eq!(next_port_json(&mut port1), json!(format!("encrypted-k m{i}")));
    }
    port1.close();
    assert!(next_port_event(&mut port1).is_none());
}

#[test]
fn crypto_v1_also_works_as_a_shared_worker() {
    let (public, private, _, _) = crypto_client("crypto-v1");
    let host = new_host();
    let library = host.connect_shared(guest("crypto-v1"), "crypto").unwrap();
    let (mut keys, theirs) = channel();
    library.post_message(Message::json(&"genkeys").unwrap().with_port(theirs)).unwrap();
    assert_eq!(next_port_json(&mut keys), json!(public));
    assert_eq!(next_port_json(&mut keys), json!(private));
}

#[test]
fn the_ticker_posts_on_a_timer_and_follows_the_selected_symbol() {
    let mut ticker = spawn("ticker");
    post(&ticker, json!({ "symbol": "GOOG", "every-ms": 20 }));
    let updates: Vec<String> = (0..3).map(|_| next_json(&mut ticker).as_str().unwrap().to_string()).collect();
    assert!(updates.iter().all(|u| u.starts_with("GOOG ")), "{updates:?}");
    assert_ne!(updates[0], updates[1], "the value moves");
    post(&ticker, json!({ "symbol": "AAPL", "every-ms": 20 }));
    // Updates of the old symbol may already be queued; after the first AAPL there is no GOOG.
    let mut next = next_json(&mut ticker);
    while next.as_str().unwrap().starts_with("GOOG ") {
        next = next_json(&mut ticker);
    }
    assert!(next.as_str().unwrap().starts_with("AAPL "), "{next}");
    for _ in 0..2 {
        assert!(next_json(&mut ticker).as_str().unwrap().starts_with("AAPL "));
    }
    ticker.terminate();
}

#[test]
fn the_searcher_answers_queries() {
    let mut searcher = spawn("searcher");
    for (query, found) in [("goo", "GOOG"), ("apple", "AAPL"), ("m", "AMZN MSFT MOZ"), ("zzz", "")] {
        post(&searcher, json!(query));
        assert_eq!(next_json(&mut searcher), found, "query {query:?}");
    }
}
