onmessage = function (e) {
  e.ports.forEach(function (port, i) { port.postMessage(i); });
  postMessage(e.ports.length);
};
