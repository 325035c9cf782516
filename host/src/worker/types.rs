//! The host side of the WIT interface `types`: message ports and buffers, as resources of a
//! worker's store (10.2.4 `MessagePort`; transferable buffers).

use wasmtime::component::Resource;

use crate::bindings::types::{self, Host as TypesHost, HostBuffer, HostMessagePort};
use crate::buffer::Buffer;
use crate::messaging::MessagePort;

use super::global_scope::post_error;
use super::state::WorkerState;

impl TypesHost for WorkerState {}

impl HostMessagePort for WorkerState {
    fn post_message(
        &mut self,
        port: Resource<MessagePort>,
        message: types::Message,
    ) -> wasmtime::Result<Result<(), types::PostError>> {
        let max_size = |this: &Self| Ok(this.table.get(&port)?.core().peer_message_size());
        let message = match self.lift_message(message, max_size)? {
            Ok(message) => message,
            Err(error) => return Ok(Err(error)),
        };
        // Posting on a port this worker closed discards the message, as the chapter does.
        Ok(self.table.get(&port)?.post_counted(message, &self.services.ledger).map_or_else(post_error, Ok))
    }

    fn start(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<()> {
        self.table.get(&port)?.core().start();
        Ok(())
    }

    fn close(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<()> {
        self.table.get(&port)?.close();
        Ok(())
    }

    fn id(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<u32> {
        let port = self.table.get(&port)?;
        port.core().id_in(&*self.queue).ok_or_else(|| wasmtime::format_err!("the port is not held by this worker"))
    }

    fn drop(&mut self, port: Resource<MessagePort>) -> wasmtime::Result<()> {
        // Dropping a port closes it (`MessagePort`'s `Drop`).
        self.table.delete(port)?;
        Ok(())
    }
}

impl HostBuffer for WorkerState {
    fn create(&mut self, len: u64) -> wasmtime::Result<Result<Resource<Buffer>, String>> {
        if len > self.services.max_buffer_len {
            return Ok(Err(format!("a buffer of {len} bytes is over the host's largest buffer")));
        }
        // Charged before it is made: the check and the charge are one step.
        let charge = match self.budget.charge(len) {
            Ok(charge) => charge,
            Err(over) => return Ok(Err(format!("a buffer of {len} bytes would pass {over}"))),
        };
        match Buffer::zeroed(len, self.services.max_buffer_len) {
            Ok(mut buffer) => {
                buffer.charge = charge;
                Ok(Ok(self.hold_buffer(buffer)?))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn from_bytes(&mut self, bytes: Vec<u8>) -> wasmtime::Result<Resource<Buffer>> {
        // A copy of what the guest holds: it counts again, as a buffer made by `create` does.
        let charge = self.budget.charge(bytes.len() as u64).map_err(|over| self.over_budget("make a buffer", over))?;
        self.services.count_copied(bytes.len());
        let mut buffer = Buffer::from_vec(bytes);
        buffer.charge = charge;
        self.hold_buffer(buffer)
    }

    fn len(&mut self, buffer: Resource<Buffer>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&buffer)?.len())
    }

    fn read(&mut self, buffer: Resource<Buffer>, offset: u64, len: u64) -> wasmtime::Result<Result<Vec<u8>, String>> {
        // The copy must fit the guest's memory: refuse before allocating it on the host.
        let room = self.budget.room().min(u64::from(u32::MAX));
        if len > room {
            return Ok(Err(format!("reading {len} bytes would not fit this worker's memory")));
        }
        let buffer = self.table.get(&buffer)?;
        match buffer.range(offset, len) {
            Ok(range) => {
                let mut copy = Vec::new();
                if copy.try_reserve_exact(range.len()).is_err() {
                    return Ok(Err(format!("cannot allocate {len} bytes to read")));
                }
                copy.extend_from_slice(&buffer.as_slice()[range]);
                self.services.count_copied(copy.len());
                Ok(Ok(copy))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn write(&mut self, buffer: Resource<Buffer>, offset: u64, bytes: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let buffer = self.table.get_mut(&buffer)?;
        match buffer.range(offset, bytes.len() as u64) {
            Ok(range) => {
                buffer.as_mut_slice()[range].copy_from_slice(&bytes);
                self.services.count_copied(bytes.len());
                Ok(Ok(()))
            }
            Err(error) => Ok(Err(error.to_string())),
        }
    }

    fn drop(&mut self, buffer: Resource<Buffer>) -> wasmtime::Result<()> {
        // Its charge is released with it.
        self.table.delete(buffer)?;
        Ok(())
    }
}
