// Ports: several in one message; a port's messages wait for start(), and setting onmessage
// starts it; addEventListener does not. (WPT webmessaging/MessagePort_*,
// webmessaging/message-channels/)
importScripts('harness.js');

async_test(function (t) {
  var worker = new Worker('ports-child.js');
  var channels = [new MessageChannel(), new MessageChannel(), new MessageChannel()];
  var answers = 0;
  function answered() {
    answers += 1;
    if (answers === 4) t.done();
  }
  channels.forEach(function (channel, i) {
    channel.port1.onmessage = t.step_func(function (e) {
      assert_equals(e.data, i, 'the answer on port ' + i);
      answered();
    });
  });
  worker.onmessage = t.step_func(function (e) {
    assert_equals(e.data, 3, 'ports the worker got');
    answered();
  });
  worker.postMessage('ports', channels.map(function (c) { return c.port2; }));
}, 'several ports in one message');

async_test(function (t) {
  var channel = new MessageChannel();
  var got = [];
  var started = false;
  channel.port2.addEventListener('message', t.step_func(function (e) {
    assert_true(started, 'a message before start()');
    got.push(e.data);
    if (got.length === 2) {
      assert_array_equals(got, ['a', 'b'], 'in order, once started');
      t.done();
    }
  }));
  channel.port1.postMessage('a');
  channel.port1.postMessage('b');
  t.step_timeout(function () {
    assert_equals(got.length, 0, 'messages before start()');
    started = true;
    channel.port2.start();
  }, 50);
}, "a port's messages wait for start()");

async_test(function (t) {
  var channel = new MessageChannel();
  channel.port1.postMessage('x');
  channel.port2.onmessage = t.step_func_done(function (e) { assert_equals(e.data, 'x'); });
}, 'setting onmessage starts the port');

async_test(function (t) {
  var channel = new MessageChannel();
  channel.port2.onclose = t.step_func_done(function (e) { assert_equals(e.type, 'close'); });
  channel.port2.start(); // the close comes after the port's messages, which wait for start()
  channel.port1.close();
}, 'closing a port fires close at its entangled port');
