// Nested workers: a worker starts a worker that starts a worker; a message goes down to the
// last and its answer comes back up. (WPT workers/nested_worker.worker.js)
importScripts('harness.js');

async_test(function (t) {
  var worker = new Worker('nested-child.js', { name: 'child' });
  worker.onmessage = t.step_func_done(function (e) {
    assert_equals(e.data, 'grandchild got hello, via child');
  });
  worker.postMessage('hello');
}, 'nested workers');

test(function () {
  assert_equals(typeof self.name, 'string', 'self.name');
  assert_true(navigator.hardwareConcurrency >= 1, 'navigator.hardwareConcurrency');
  assert_true(String(location.href).length > 0, 'location.href');
  assert_equals(self, globalThis, 'self');
}, 'the worker global scope');

async_test(function (t) {
  var worker = new Worker('strict-child.js');
  worker.onmessage = t.step_func_done(function (e) { assert_equals(e.data, 'strict hello'); });
  worker.postMessage('hello');
}, "a strict script's function onmessage is its handler");
