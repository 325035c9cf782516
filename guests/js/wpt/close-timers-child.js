var port;
onmessage = function (e) {
  port = e.ports[0];
  setTimeout(function () { postMessage('timeout fired'); }, 0);
  setInterval(function () { postMessage('interval fired'); }, 1);
  postMessage('closing');
  close();
};
