//! The chapter's shared-state example (10.1.2.4), the worker side: one shared worker keeps a
//! 7x7 map and a chat for every viewer connected to it.
//!
//! Each viewer gets `"cfg <name>"` and its 3x3 view `"map a,b,c,..."` when it connects. It can
//! send `"mov up|down|left|right"` (answered with its new view), `"set <v>"` (sets the tile
//! under it; every viewer gets its view again), `"txt <text>"` (public chat: every viewer gets
//! `"txt <name> <text>"`), and `"msg <name>"` (private chat: the worker makes a message channel
//! and gives one end to each of the two viewers, with `"msg <other name>"`, so that they talk
//! directly, without the worker). Beyond the chapter, `"cnt"` answers `"cnt <n>"`, the number of
//! messages this worker has received, so that a test can see what did not pass through it.

use std::collections::BTreeMap;

use serde_json::Value;
use wasm_workers_guest::{export_worker, MessageChannel, Port, Transfer, Worker};

struct Viewer {
    port: Port,
    name: u32,
    x: usize,
    y: usize,
}

struct Multiviewer {
    next_name: u32,
    map: [[char; 7]; 7],
    viewers: BTreeMap<u32, Viewer>,
    received: u64,
}

impl Default for Multiviewer {
    fn default() -> Self {
        let rows = ["0000000", "1101011", "0101000", "0101011", "0001000", "1001111", "1101101"];
        let mut map = [['0'; 7]; 7];
        for (y, row) in rows.iter().enumerate() {
            for (x, tile) in row.chars().enumerate() {
                map[y][x] = tile;
            }
        }
        Multiviewer { next_name: 0, map, viewers: BTreeMap::new(), received: 0 }
    }
}

fn wrap(value: isize) -> usize {
    value.rem_euclid(7) as usize
}

impl Multiviewer {
    fn send_map_data(&self, name: u32) {
        let Some(viewer) = self.viewers.get(&name) else { return };
        let mut tiles = Vec::with_capacity(9);
        for dy in -1..=1 {
            for dx in -1..=1 {
                let y = wrap(viewer.y as isize + dy);
                let x = wrap(viewer.x as isize + dx);
                tiles.push(self.map[y][x].to_string());
            }
        }
        let _ = viewer.port.post(&format!("map {}", tiles.join(",")));
    }

    fn get_message(&mut self, name: u32, data: String) {
        self.received += 1;
        let (command, rest) = data.split_at(data.len().min(4));
        match command {
            "mov " => {
                let (dx, dy) = match rest {
                    "up" => (0, -1),
                    "down" => (0, 1),
                    "left" => (-1, 0),
                    "right" => (1, 0),
                    _ => (0, 0),
                };
                if let Some(viewer) = self.viewers.get_mut(&name) {
                    viewer.x = wrap(viewer.x as isize + dx);
                    viewer.y = wrap(viewer.y as isize + dy);
                }
                self.send_map_data(name);
            }
            "set " => {
                if let (Some(viewer), Some(tile)) = (self.viewers.get(&name), rest.chars().next()) {
                    let (x, y) = (viewer.x, viewer.y);
                    self.map[y][x] = tile;
                }
                let names: Vec<u32> = self.viewers.keys().copied().collect();
                for other in names {
                    self.send_map_data(other);
                }
            }
            "txt " => {
                for viewer in self.viewers.values() {
                    let _ = viewer.port.post(&format!("txt {name} {rest}"));
                }
            }
            "msg " => {
                let other = rest.split(' ').next().and_then(|n| n.parse::<u32>().ok());
                if let (Some(party1), Some(party2)) =
                    (self.viewers.get(&name), other.and_then(|n| self.viewers.get(&n)))
                {
                    let channel = MessageChannel::new();
                    let _ =
                        party1.port.post_with(&format!("msg {}", party2.name), Transfer::new().port(&channel.port1));
                    let _ =
                        party2.port.post_with(&format!("msg {}", party1.name), Transfer::new().port(&channel.port2));
                }
            }
            "cnt" => {
                if let Some(viewer) = self.viewers.get(&name) {
                    let _ = viewer.port.post(&format!("cnt {}", self.received));
                }
            }
            _ => {}
        }
    }
}

impl Worker for Multiviewer {
    type Message = Value;

    fn on_message(&mut self, _: Value) {}

    fn on_connect(&mut self, port: Port) {
        let name = self.next_name;
        self.next_name += 1;
        let _ = port.post(&format!("cfg {name}"));
        port.on_message(move |this: &mut Self, data: String| this.get_message(name, data)).on_close(
            move |this: &mut Self| {
                this.viewers.remove(&name);
            },
        );
        self.viewers.insert(name, Viewer { port, name, x: 0, y: 0 });
        self.send_map_data(name);
    }
}

export_worker!(Multiviewer);
