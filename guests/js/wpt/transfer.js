// Transferred objects are unusable in the sender; a transfer list naming an object twice,
// and what cannot be cloned, throw DataCloneError and send nothing. (WPT
// html/infrastructure/safe-passing-of-structured-data/, webmessaging/)
importScripts('harness.js');

async_test(function (t) {
  var worker = new Worker('echo-child.js');
  var buffer = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer;
  var view = new Uint8Array(buffer);
  worker.onmessage = t.step_func_done(function (e) {
    assert_true(e.data instanceof ArrayBuffer, 'an ArrayBuffer comes back');
    assert_array_equals(Array.from(new Uint8Array(e.data)), [1, 2, 3, 4, 5, 6, 7, 8]);
  });
  worker.postMessage(buffer, [buffer]);
  assert_equals(buffer.byteLength, 0, 'the sent buffer is detached');
  assert_equals(view.length, 0, 'its views are empty');
  assert_throws_dom('DataCloneError', function () { worker.postMessage(buffer, [buffer]); }, 'sending it again');
}, 'a transferred ArrayBuffer is detached in the sender');

async_test(function (t) {
  var worker = new Worker('echo-child.js');
  var channel = new MessageChannel();
  worker.postMessage('port', [channel.port2]);
  assert_throws_dom('DataCloneError', function () { worker.postMessage('again', [channel.port2]); }, 'transferring it again');
  channel.port2.postMessage('lost'); // a detached port posts nothing
  channel.port1.onmessage = t.unreached_func('a detached port delivered');
  t.step_timeout(function () { t.done(); }, 100);
}, 'a transferred MessagePort is unusable in the sender');

test(function () {
  var buffer = new ArrayBuffer(4);
  assert_throws_dom('DataCloneError', function () { postMessage(buffer, [buffer, buffer]); });
  assert_equals(buffer.byteLength, 4, 'nothing was detached');
  var channel = new MessageChannel();
  assert_throws_dom('DataCloneError', function () { postMessage('x', [channel.port1, channel.port1]); });
}, 'a duplicate in the transfer list is a DataCloneError');

test(function () {
  assert_throws_dom('DataCloneError', function () { postMessage(function () {}); }, 'a function');
  assert_throws_dom('DataCloneError', function () { postMessage({ f: function () {} }); }, 'a function inside');
  assert_throws_dom('DataCloneError', function () { postMessage(Symbol('s')); }, 'a symbol');
  var channel = new MessageChannel();
  assert_throws_dom('DataCloneError', function () { postMessage({ port: channel.port1 }); }, 'a port not in the transfer list');
  assert_throws_dom('DataCloneError', function () { channel.port1.postMessage('x', [channel.port1]); }, 'a port sending itself');
}, 'what cannot be cloned is a DataCloneError');
