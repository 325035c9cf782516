// The chapter's shared-worker demo (10.1.2.3), as written there: every page that connects is
// greeted with its connection's number, and answered "pong" for every message.
var count = 0;
onconnect = function(e) {
  count += 1;
  var port = e.ports[0];
  port.postMessage('Hello World! You are connection #' + count);
  port.onmessage = function(e) {
    port.postMessage('pong'); // not e.ports[0].postMessage!
    // e.target.postMessage('pong'); would work also
  }
}
