//! Serving tasks: [`TaskWorker`], and the [`Worker`] that serves one ([`Served`]).

#[allow(unused_imports)]
use super::*;

/// A worker that serves typed tasks, and optionally streams.
pub trait TaskWorker: Default + 'static {
    /// What a task gets.
    type Input: DeserializeOwned;
    /// What a task gives back.
    type Output: Serialize;

    /// Runs one task. An `Err` fails this task only; a panic fails the worker, and with it
    /// every task it had not answered yet.
    ///
    /// # Errors
    ///
    /// Whatever the task reports as its failure.
    fn run(&mut self, input: Self::Input) -> Result<Self::Output, String>;

    /// A caller opened a stream (`label` is the caller's). By default it is refused: ended at
    /// once.
    fn on_stream(&mut self, label: String, stream: Stream) {
        let _ = label;
        stream.end();
    }
}

/// The [`Worker`] that serves a [`TaskWorker`]'s tasks; made by
/// [`export_task_worker!`](crate::export_task_worker).
#[derive(Default)]
pub struct Served<T>(pub T);

impl<T: TaskWorker> Worker for Served<T> {
    type Message = Received<Value>;

    fn on_message(&mut self, message: Received<Value>) {
        let Received { data, mut ports, .. } = message;
        let (id, input) = match protocol::request(&data) {
            protocol::Incoming::OpenStream(label) => {
                match ports.pop() {
                    Some(port) => self.0.on_stream(label.to_string(), Stream::new(port)),
                    None => eprintln!("a stream request came without its port"),
                }
                return;
            }
            protocol::Incoming::Request { task, input } => (task, input),
            protocol::Incoming::Other => {
                eprintln!("not a task request: {data}");
                return;
            }
        };
        match input.cloned().map(serde_json::from_value::<T::Input>) {
            Some(Ok(input)) => match self.0.run(input) {
                Ok(output) => post(&protocol::Output { task: id, output }),
                Err(error) => post(&protocol::Failure { task: id, error }),
            },
            Some(Err(error)) => post(&protocol::Failure { task: id, error: format!("{}{error}", protocol::BAD_INPUT) }),
            None => post(&protocol::Failure { task: id, error: protocol::NO_INPUT }),
        }
    }
}

/// Makes `$task` (a type implementing [`TaskWorker`]) this component's task worker.
#[macro_export]
macro_rules! export_task_worker {
    ($task:ty) => {
        $crate::export_worker!($crate::Served<$task>);
    };
}
