//! A WASI command: a valid component, but not a worker (it exports no event handlers).

fn main() {
    println!("I am a command, not a worker");
}
