//! Write Web Workers for [wasm-workers](https://example.invalid/wasm-workers) in idiomatic Rust.
//!
//! A worker is a type that implements [`Worker`]; [`export_worker!`] makes it the component's
//! event handlers. The host creates the worker with [`Default`] before its first event and
//! calls it one event at a time. Build the crate as a `cdylib` with
//! `cargo build --release --target wasm32-wasip2`: the `.wasm` it writes is the component.
//!
//! # Example: a worker that delegates
//!
//! The chapter's delegation example (10.1.2.5): split a range over sub-workers, add up what
//! they report.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wasm_workers_guest::{export_worker, post, close, Child, Worker};
//!
//! #[derive(Deserialize)]
//! struct Job { n: u64, k: u64 }
//!
//! #[derive(Serialize)]
//! struct Range { from: u64, to: u64 }
//!
//! #[derive(Default)]
//! struct Delegation { pending: u64, total: u64 }
//!
//! impl Worker for Delegation {
//!     type Message = Job;
//!
//!     fn on_message(&mut self, job: Job) {
//!         self.pending = job.k;
//!         for i in 0..job.k {
//!             let range = Range { from: job.n * i / job.k, to: job.n * (i + 1) / job.k };
//!             let child = Child::spawn("core.wasm", Some(&format!("core-{i}")))
//!                 .expect("core.wasm is beside this worker")
//!                 .on_message(|this: &mut Self, count: u64| {
//!                     this.total += count;
//!                     this.pending -= 1;
//!                     if this.pending == 0 {
//!                         post(&this.total);
//!                         close();
//!                     }
//!                 });
//!             child.post(&range);
//!         }
//!     }
//! }
//!
//! export_worker!(Delegation);
//! ```
//!
//! # Example: ports, buffers and a shared worker
//!
//! A shared worker (10.1.2.3) that greets every client on the port it connected with, and an
//! image worker (10.1.2.2) that receives a buffer and transfers it back: the bytes never move
//! between workers, only ownership does.
//!
//! ```no_run
//! use wasm_workers_guest::{export_worker, post_with, Port, Received, Transfer, Worker};
//!
//! #[derive(Default)]
//! struct Greeter { count: u32 }
//!
//! impl Worker for Greeter {
//!     // `Received<T>` also carries the ports and buffers transferred with the message.
//!     type Message = Received<String>;
//!
//!     fn on_connect(&mut self, port: Port) {
//!         self.count += 1;
//!         let _ = port.post(&format!("Hello World! You are connection #{}", self.count));
//!         let reply = port.clone();
//!         port.on_message(move |_: &mut Self, text: String| {
//!             if text == "ping" { let _ = reply.post(&"pong"); }
//!         });
//!     }
//!
//!     fn on_message(&mut self, message: Received<String>) {
//!         for buffer in message.buffers {
//!             let mut pixels = buffer.read_all().unwrap();   // copy in
//!             pixels.iter_mut().for_each(|p| *p = 255 - *p);
//!             buffer.write(0, &pixels).unwrap();              // copy out
//!             // Transfer it back: no copy; `buffer` is detached here from now on.
//!             post_with(&"inverted", Transfer::new().buffer(&buffer)).unwrap();
//!         }
//!     }
//! }
//!
//! export_worker!(Greeter);
//! ```
//!
//! Timers are event-loop tasks too: `set_timeout(1000, |this: &mut MyWorker| ...)` runs the
//! closure on the worker, and [`clear_timer`] cancels it.
//!
//! # Messages and codecs
//!
//! Every message carries its [`Codec`]. [`post`] and [`Child::post`] send JSON, the codec the
//! CLI and every language speak; [`post_encoded`] and [`Child::post_encoded`] can send
//! postcard, a compact binary encoding, between Rust workers. A receiver decodes whatever
//! codec a message declares; a message that does not decode as the receiver's type goes to
//! [`Worker::on_message_error`], never to a trap.
//!
//! # Errors
//!
//! A panic in a handler ends the worker: the SDK's panic hook hands the panic message to the
//! host, whose error event to the parent carries it. A child's error goes to the child's
//! [`Child::on_error`] callback; without one it is re-raised in the parent (as an unhandled
//! `error` event is reported in the worker that owns the `Worker` object).

#![warn(missing_docs)]

// Lets the generated bindings name this crate the way the exporting crate does.
extern crate self as wasm_workers_guest;

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

mod bytes;
mod task;
pub use bytes::Bytes;
pub use task::{Pool, PoolOptions, Schedule, Served, Stream, TaskError, TaskWorker};

#[doc(hidden)]
pub mod __private {
    //! The macro's plumbing; not part of the API.
    pub use crate::dispatch::{on_close, on_connect, on_error, on_messages, on_start, on_timeout};

    wit_bindgen::generate!({
        path: "../wit",
        world: "worker",
        pub_export_macro: true,
        export_macro_name: "__export_handlers",
        default_bindings_module: "wasm_workers_guest::__private",
        runtime_path: "wasm_workers_guest::__private::wit_bindgen::rt",
    });
    pub use wit_bindgen;
}

use __private::wasm_workers::worker::{scope, types};

mod buffer;
mod child;
mod dispatch;
mod message;
mod port;
mod registry;
mod shared;
mod timers;
mod worker;

pub use buffer::*;
pub use child::*;
pub use message::*;
pub use port::*;
#[allow(unused_imports)]
use registry::*;
pub use shared::*;
pub use timers::*;
pub use worker::*;

/// Makes `$worker` (a type implementing [`Worker`]) this component's event handlers.
/// Use it once per component, at the crate root.
#[macro_export]
macro_rules! export_worker {
    ($worker:ty) => {
        const _: () = {
            struct Handlers;

            impl $crate::__private::exports::wasm_workers::worker::handlers::Guest for Handlers {
                fn on_start() {
                    $crate::__private::on_start::<$worker>()
                }

                fn on_messages(burst: $crate::__private::wasm_workers::worker::types::MessageBurst) -> u32 {
                    $crate::__private::on_messages::<$worker>(burst)
                }

                fn on_error(
                    source: $crate::__private::wasm_workers::worker::types::Source,
                    error: $crate::__private::wasm_workers::worker::types::ErrorEvent,
                ) {
                    $crate::__private::on_error::<$worker>(source, error)
                }

                fn on_close(source: $crate::__private::wasm_workers::worker::types::Source) {
                    $crate::__private::on_close::<$worker>(source)
                }

                fn on_connect(port: $crate::__private::wasm_workers::worker::types::MessagePort) {
                    $crate::__private::on_connect::<$worker>(port)
                }

                fn on_timeout(id: u32) {
                    $crate::__private::on_timeout::<$worker>(id)
                }
            }

    $crate::__private::__export_handlers!(Handlers with_types_in $crate::__private);
        };
    };
}
