// A shared worker's onconnect: each SharedWorker of one name connects to the same instance,
// whose connect event carries the port in ports[0] and empty data. (WPT
// workers/SharedWorker_*, workers/shared-worker-*)
importScripts('harness.js');

async_test(function (t) {
  var first = new SharedWorker('shared-child.js', 'wpt-shared');
  var second = new SharedWorker('shared-child.js', { name: 'wpt-shared' });
  var answers = [];
  function got(e) {
    answers.push(e.data);
    if (answers.length === 2) {
      answers.sort();
      assert_array_equals(answers, ['connection 1 of wpt-shared: data "" ports 1', 'connection 2 of wpt-shared: data "" ports 1']);
      t.done();
    }
  }
  first.port.onmessage = t.step_func(got);
  second.port.onmessage = t.step_func(got);
}, "a shared worker's onconnect");
