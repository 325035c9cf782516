// close() discards the tasks already queued: the worker handles the first message, calls
// close(), and never handles the second, which was queued before it closed. (WPT
// workers/interfaces/WorkerGlobalScope/close/)
importScripts('harness.js');

async_test(function (t) {
  var worker = new Worker('close-child.js');
  var channel = new MessageChannel();
  var got = [];
  worker.onmessage = t.step_func(function (e) { got.push(e.data); });
  // The child holds the other end until it ends: its end closes this one. (The close comes
  // after the port's messages, which wait for start().)
  channel.port1.start();
  channel.port1.onclose = t.step_func_done(function () {
    assert_array_equals(got, ['handled first'], 'messages handled before close()');
  });
  worker.postMessage('first', [channel.port2]);
  worker.postMessage('second');
}, 'close() and a message already queued');

async_test(function (t) {
  var worker = new Worker('close-timers-child.js');
  var channel = new MessageChannel();
  var got = [];
  worker.onmessage = t.step_func(function (e) { got.push(e.data); });
  channel.port1.start();
  channel.port1.onclose = t.step_func_done(function () {
    assert_array_equals(got, ['closing'], 'no timer fired after close()');
  });
  worker.postMessage('go', [channel.port2]);
}, 'close() and pending setTimeout/setInterval');
