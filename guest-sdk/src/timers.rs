//! Timers (`setTimeout`, `setInterval`, `clearTimeout`, `clearInterval`).

#[allow(unused_imports)]
use crate::*;

/// Runs `f` once, `delay_ms` milliseconds from now, as a task of this worker (`setTimeout`).
/// Returns the timer's id for [`clear_timer`]. A closed or terminated worker's timers never
/// fire; a worker with a pending timer does not end idle.
pub fn set_timeout<W: Worker>(delay_ms: u32, f: impl FnOnce(&mut W) + 'static) -> u32 {
    let id = scope::set_timeout(delay_ms);
    let mut f = Some(f);
    let callback: Box<dyn FnMut(&mut W)> = Box::new(move |worker| {
        if let Some(f) = f.take() {
            f(worker)
        }
    });
    TIMERS.with_borrow_mut(|timers| timers.insert(id, (false, Box::new(callback) as Box<dyn Any>)));
    id
}

/// Runs `f` every `interval_ms` milliseconds until cleared (`setInterval`).
pub fn set_interval<W: Worker>(interval_ms: u32, f: impl FnMut(&mut W) + 'static) -> u32 {
    let id = scope::set_interval(interval_ms);
    let callback: Box<dyn FnMut(&mut W)> = Box::new(f);
    TIMERS.with_borrow_mut(|timers| timers.insert(id, (true, Box::new(callback) as Box<dyn Any>)));
    id
}

/// Cancels a timeout or interval (`clearTimeout`, `clearInterval`); unknown ids are ignored.
/// An interval may clear itself from its own callback.
pub fn clear_timer(id: u32) {
    scope::clear_timer(id);
    let removed = TIMERS.with_borrow_mut(|timers| timers.remove(&id));
    if removed.is_none() {
        // Its callback is running (taken out of the map): do not put it back.
        CLEARED.with_borrow_mut(|cleared| cleared.insert(id));
    }
}
