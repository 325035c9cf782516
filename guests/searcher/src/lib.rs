//! The chapter's background I/O example, the searcher worker: sent a query, it posts the
//! symbols of the companies whose name or symbol contains it (case-insensitively), separated
//! by spaces. The chapter's worker asks `search.cgi` over the network; this one searches a
//! stand-in list.

use wasm_workers_guest::{export_worker, post, Worker};

const COMPANIES: &[(&str, &str)] = &[
    ("Alphabet (Google)", "GOOG"),
    ("Apple", "AAPL"),
    ("Amazon", "AMZN"),
    ("Microsoft", "MSFT"),
    ("Mozilla", "MOZ"),
    ("Opera", "OPRA"),
];

#[derive(Default)]
struct Searcher;

impl Worker for Searcher {
    type Message = String;

    fn on_message(&mut self, query: String) {
        let query = query.to_lowercase();
        let found: Vec<&str> = COMPANIES
            .iter()
            .filter(|(name, symbol)| name.to_lowercase().contains(&query) || symbol.to_lowercase().contains(&query))
            .map(|&(_, symbol)| symbol)
            .collect();
        post(&found.join(" "));
    }
}

export_worker!(Searcher);
