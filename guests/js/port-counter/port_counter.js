// The port-move tests' counter in JavaScript, speaking the Rust guest port-counter's protocol,
// so that the Rust port-mover moves a port between two JavaScript workers:
// - {"count-until": n} with a port: every number that arrives on the port from now on is
//   counted; the one that is n - 1 makes it post {"count", "first", "last", "in-order"} and close;
// - "move": gives the port back to its parent, with what it counted so far, under {"moved": …};
//   the messages it has not read yet travel with the port.
var port = null;
var until = 0, count = 0, first = null, last = null, inOrder = true;

function report() {
  return { count: count, first: first, last: last, 'in-order': inOrder };
}

onmessage = function (event) {
  var command = event.data;
  if (command === 'move') {
    if (port === null) {
      postMessage({ error: 'nothing to move' });
      return;
    }
    var moving = port;
    port = null;
    postMessage({ moved: report() }, [moving]);
  } else if (command !== null && typeof command === 'object' && 'count-until' in command) {
    until = command['count-until'];
    port = event.ports[0];
    port.onmessage = function (e) {
      var n = e.data;
      if (first === null) first = n;
      if (last !== null && n !== last + 1) inOrder = false;
      last = n;
      count += 1;
      if (n + 1 === until) {
        postMessage(report());
        close();
      }
    };
  }
};
