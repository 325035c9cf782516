//! Moving a buffer to a worker and back: by transfer (ownership moves, no byte is copied) and
//! by copy (the bytes as message data), for 1 KiB, 1 MiB, 64 MiB and 1 GiB; beside moving and
//! cloning a `Vec<u8>` between native threads.

use std::sync::mpsc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wasm_workers::{Buffer, Codec, Host, Message, WorkerOptions, DEFAULT_MAX_BUFFER_LEN};
use wasm_workers_benches::{answer, load};

const SIZES: [(u64, &str); 4] = [(1 << 10, "1KiB"), (1 << 20, "1MiB"), (64 << 20, "64MiB"), (1 << 30, "1GiB")];

fn transfer(c: &mut Criterion) {
    let host = Host::new().expect("the engine starts");
    let bounce = load(&host, "bounce");
    let mut worker = host.spawn(&bounce, WorkerOptions::default()).unwrap();
    let (to_thread, from_main) = mpsc::channel::<Vec<u8>>();
    let (to_main, from_thread) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        for bytes in from_main {
            let _ = to_main.send(bytes);
        }
    });
    let mut group = c.benchmark_group("transfer");
    group.sample_size(10);
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size));
        let mut slot = Some(Buffer::zeroed(size, DEFAULT_MAX_BUFFER_LEN).unwrap());
        group.bench_function(BenchmarkId::new("wasm-transfer", label), |b| {
            b.iter(|| {
                let buffer = slot.take().expect("the buffer is back");
                worker.post_message(Message::new(Codec::Raw, Vec::new()).with_buffer(buffer)).unwrap();
                slot = answer(&mut worker).buffers.pop();
            })
        });
        let mut vec = Some(vec![0u8; size as usize]);
        group.bench_function(BenchmarkId::new("native-move", label), |b| {
            b.iter(|| {
                to_thread.send(vec.take().unwrap()).unwrap();
                vec = Some(from_thread.recv().unwrap());
            })
        });
        // Copies: skip the largest, which would take the guest's memory past 2 GiB.
        if size <= 64 << 20 {
            let data = vec![7u8; size as usize];
            group.bench_function(BenchmarkId::new("wasm-copy", label), |b| {
                b.iter(|| {
                    worker.post_message(Message::new(Codec::Raw, data.clone())).unwrap();
                    answer(&mut worker);
                })
            });
            let data = vec![7u8; size as usize];
            group.bench_function(BenchmarkId::new("native-copy", label), |b| {
                b.iter(|| {
                    to_thread.send(data.clone()).unwrap();
                    from_thread.recv().unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, transfer);
criterion_main!(benches);
