// A JavaScript worker with Rust children, for the mixed-graph tests. Beside it in its
// directory are the Rust guests `bounce.wasm` and `echo.wasm`.
//
// - "bounce": sends the Rust `bounce` worker one end of a channel and a buffer; bounce posts
//   both back; the port is used, and the buffer read, and what was seen is posted.
// - "map": sends the Rust `echo` worker a Map, which only JavaScript reads: echo answers
//   with the message error it got, which is posted.
onmessage = function (event) {
  if (event.data === 'bounce') {
    var bounce = new Worker('bounce.wasm');
    var channel = new MessageChannel();
    var pixels = new Uint8Array([1, 2, 3, 4]).buffer;
    bounce.onmessage = function (e) {
      var port = e.ports[0];
      var buffer = e.buffers[0];
      port.onmessage = function (m) {
        postMessage({
          data: e.data,
          port: m.data,
          bytes: Array.from(new Uint8Array(buffer)),
          detached: pixels.byteLength === 0,
        });
        bounce.terminate();
      };
      channel.port1.postMessage('through the port');
    };
    bounce.postMessage({ hello: 'rust' }, [channel.port2, pixels]);
  } else if (event.data === 'map') {
    var echo = new Worker('echo.wasm');
    echo.onmessage = function (e) {
      postMessage(e.data);
      echo.terminate();
    };
    echo.postMessage(new Map([[1, 'one']]));
  }
};
