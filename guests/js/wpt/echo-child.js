onmessage = function (e) {
  postMessage(e.data, e.ports);
};
