// The page of the chapter's shared-worker demo (10.1.2.3), as a worker: it connects to the
// shared worker test.js twice (as two pages would), says "ping" on each connection, and
// passes on to its own parent every line the shared worker sends, with the connection's
// number here.
for (var page = 1; page <= 2; page += 1) {
  (function (page) {
    var worker = new SharedWorker('test.js');
    var log = function (e) { postMessage('page ' + page + ': ' + e.data); };
    worker.port.addEventListener('message', log, false);
    worker.port.start(); // note: need this when using addEventListener
    worker.port.postMessage('ping');
  })(page);
}
