// Errors: self.onerror handles an exception and the worker goes on; an exception it does
// not handle reaches the parent's onerror with message, filename, line and column; so does
// one thrown at a script's top level. (WPT workers/WorkerGlobalScope_ErrorEvent_*.htm,
// workers/Worker_ErrorEvent_*)
importScripts('harness.js');

async_test(function (t) {
  var worker = new Worker('handled-child.js');
  var got = [];
  worker.onmessage = t.step_func(function (e) {
    got.push(e.data);
    if (got.length === 2) {
      var report = got[0];
      assert_true(report.message.indexOf('handled here') >= 0, 'the message: ' + report.message);
      assert_equals(report.filename, 'handled-child.js', 'the filename');
      assert_equals(report.lineno, 4, 'the line');
      assert_true(report.colno > 0, 'a column');
      assert_true(report.isError, 'the error object');
      assert_equals(got[1], 'still running');
      t.done();
    }
  });
  worker.onerror = t.unreached_func('a handled error reached the parent');
  worker.postMessage('throw');
  worker.postMessage('ping');
}, 'self.onerror handling an exception');

async_test(function (t) {
  var worker = new Worker('uncaught-child.js');
  worker.onerror = t.step_func_done(function (e) {
    e.preventDefault(); // first: a failed assertion must not make it this worker's own error
    assert_true(e instanceof ErrorEvent, 'an ErrorEvent');
    assert_true(e.message.indexOf('not handled') >= 0, 'the message: ' + e.message);
    assert_equals(e.filename, 'uncaught-child.js', 'the filename');
    assert_equals(e.lineno, 3, 'the line');
    assert_equals(e.colno, 9, 'the column');
  });
  worker.postMessage('throw');
}, "an exception self.onerror does not handle reaches the parent's onerror");

async_test(function (t) {
  var worker = new Worker('top-level-child.js');
  worker.onerror = t.step_func_done(function (e) {
    e.preventDefault();
    assert_true(e.message.indexOf('RangeError') >= 0 && e.message.indexOf('at the top') >= 0, 'the message: ' + e.message);
    assert_equals(e.lineno, 2, 'the line');
  });
}, 'an exception at the top level of a worker script');
