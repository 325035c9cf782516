// terminate() discards the worker's queued events: once it is called, no message event of
// that worker is dispatched, though its answers were on their way. (WPT
// workers/Worker_terminate_event_queue.htm)
importScripts('harness.js');

async_test(function (t) {
  var worker = new Worker('echo-child.js');
  var seen = 0;
  worker.onmessage = t.step_func(function (e) {
    seen += 1;
    worker.terminate();
    // A second worker's answer comes after the first worker's queued answers would have.
    var other = new Worker('echo-child.js');
    other.onmessage = t.step_func(function () {
      t.step_timeout(function () {
        assert_equals(seen, 1, 'message events after terminate()');
        t.done();
      }, 100);
    });
    other.postMessage('after');
  });
  for (var i = 0; i < 100; i += 1) worker.postMessage(i);
}, 'terminate() and the event queue');

