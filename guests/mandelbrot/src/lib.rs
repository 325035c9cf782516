//! Renders the Mandelbrot set with `par_map` over a pool of `mandelbrot_row` workers. Sent
//! `{"width", "height", "max-iter"}`, it posts `{"checksum": c, "inside": n}`: an FNV-1a hash of
//! every pixel's iteration count in row order, and how many pixels never escaped. Rows near
//! the middle cost far more than the edges; the pool hands out rows on demand.

use serde::{Deserialize, Serialize};
use serde_json::json;
use wasm_workers_guest::{close, export_worker, post, Pool, PoolOptions, TaskError, Worker};

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
struct View {
    width: u32,
    height: u32,
    max_iter: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Row {
    y: u32,
    width: u32,
    height: u32,
    max_iter: u32,
}

#[derive(Default)]
struct Mandelbrot;

impl Worker for Mandelbrot {
    type Message = View;

    fn on_message(&mut self, view: View) {
        let rows = (0..view.height)
            .map(|y| Row { y, width: view.width, height: view.height, max_iter: view.max_iter })
            .collect();
        let pool = Pool::<Self>::new("mandelbrot_row.wasm", "row", PoolOptions::default());
        pool.par_map(rows, move |_: &mut Self, rows: Vec<Result<Vec<u32>, TaskError>>| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            let mut inside = 0u64;
            for row in rows {
                let row = row.unwrap_or_else(|error| panic!("a row failed: {error}"));
                for iterations in row {
                    inside += u64::from(iterations == view.max_iter);
                    for byte in iterations.to_le_bytes() {
                        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
            }
            post(&json!({ "checksum": format!("{hash:016x}"), "inside": inside }));
            close();
        });
    }
}

export_worker!(Mandelbrot);
