//! The chapter's module-worker example (10.1.2.2): an image is transferred in as an RGBA
//! buffer, filtered in place, and transferred back. Sent `{"width", "height", "filter"}` with
//! one buffer, where `filter` is `"grayscale"` or `"brighten"`; answers
//! `{"width", "height", "filter"}` with the same buffer.

use serde::{Deserialize, Serialize};
use wasm_workers_guest::{export_worker, post, post_with, Received, Transfer, Worker};

#[derive(Deserialize, Serialize)]
struct Image {
    width: u32,
    height: u32,
    filter: String,
}

#[derive(Default)]
struct ImageFilter;

fn grayscale(pixels: &mut [u8]) {
    for px in pixels.chunks_exact_mut(4) {
        // Rec. 601 luma, in integers.
        let y = ((px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000) as u8;
        px[0] = y;
        px[1] = y;
        px[2] = y;
    }
}

fn brighten(pixels: &mut [u8]) {
    for px in pixels.chunks_exact_mut(4) {
        for c in &mut px[..3] {
            *c = c.saturating_add(32);
        }
    }
}

impl Worker for ImageFilter {
    type Message = Received<Image>;

    fn on_message(&mut self, message: Received<Image>) {
        let image = message.data;
        let Some(buffer) = message.buffers.into_iter().next() else {
            post(&serde_json::json!({ "error": "no image buffer was transferred" }));
            return;
        };
        let expected = u64::from(image.width) * u64::from(image.height) * 4;
        if buffer.len() != expected {
            post(
                &serde_json::json!({ "error": format!("{} bytes is not a {}x{} RGBA image", buffer.len(), image.width, image.height) }),
            );
            return;
        }
        let mut pixels = buffer.read_all().expect("the buffer is held here");
        match image.filter.as_str() {
            "grayscale" => grayscale(&mut pixels),
            "brighten" => brighten(&mut pixels),
            other => {
                post(&serde_json::json!({ "error": format!("unknown filter {other}") }));
                return;
            }
        }
        buffer.write(0, &pixels).expect("the buffer is held here");
        post_with(&image, Transfer::new().buffer(&buffer)).expect("the buffer is held here");
    }
}

export_worker!(ImageFilter);
