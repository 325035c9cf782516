//! The chapter's background I/O example, the stock ticker worker: sent a stock symbol, it
//! posts `"<symbol> <value>"` now and again every 10 seconds (the chapter's `setTimeout`
//! loop), until sent another symbol. `{"symbol": s, "every-ms": n}` sets the period too.
//!
//! The chapter's worker fetches the value over the network (`stock.cgi`); this one reads a
//! stand-in data source: a value that moves deterministically with each update.

use serde::Deserialize;
use wasm_workers_guest::{clear_timer, export_worker, post, set_timeout, Worker};

#[derive(Deserialize)]
#[serde(untagged)]
enum Select {
    Symbol(String),
    Every {
        symbol: String,
        #[serde(rename = "every-ms")]
        every_ms: u32,
    },
}

#[derive(Default)]
struct Ticker {
    symbol: String,
    every_ms: u32,
    timer: Option<u32>,
    updates: u64,
}

/// The stand-in for `get('stock.cgi?' + symbol)`.
fn quote(symbol: &str, update: u64) -> String {
    let base = symbol.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % 900 + 100;
    let cents = (update * 37) % 100;
    format!("{}.{cents:02}", base + update)
}

impl Ticker {
    fn update(&mut self) {
        post(&format!("{} {}", self.symbol, quote(&self.symbol, self.updates)));
        self.updates += 1;
        self.timer = Some(set_timeout(self.every_ms, |this: &mut Self| this.update()));
    }
}

impl Worker for Ticker {
    type Message = Select;

    fn on_message(&mut self, select: Select) {
        (self.symbol, self.every_ms) = match select {
            Select::Symbol(symbol) => (symbol, 10_000),
            Select::Every { symbol, every_ms } => (symbol, every_ms),
        };
        if let Some(timer) = self.timer.take() {
            clear_timer(timer);
        }
        self.update();
    }
}

export_worker!(Ticker);
