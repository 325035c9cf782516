//! A task worker: one row of the Mandelbrot set. `{"y", "width", "height", "max-iter"}` → the
//! escape iteration count of each pixel of row `y` of the view [-2, 1] x [-1.5, 1.5].

use serde::Deserialize;
use wasm_workers_guest::{export_task_worker, TaskWorker};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Row {
    y: u32,
    width: u32,
    height: u32,
    max_iter: u32,
}

#[derive(Default)]
struct MandelbrotRow;

impl TaskWorker for MandelbrotRow {
    type Input = Row;
    type Output = Vec<u32>;

    fn run(&mut self, row: Row) -> Result<Vec<u32>, String> {
        let ci = -1.5 + 3.0 * f64::from(row.y) / f64::from(row.height);
        Ok((0..row.width)
            .map(|x| {
                let cr = -2.0 + 3.0 * f64::from(x) / f64::from(row.width);
                let (mut zr, mut zi, mut i) = (0.0f64, 0.0f64, 0);
                while i < row.max_iter && zr * zr + zi * zi <= 4.0 {
                    let t = zr * zr - zi * zi + cr;
                    zi = 2.0 * zr * zi + ci;
                    zr = t;
                    i += 1;
                }
                i
            })
            .collect())
    }
}

export_task_worker!(MandelbrotRow);
