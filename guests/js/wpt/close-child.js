var port;
onmessage = function (e) {
  if (e.ports.length > 0) port = e.ports[0];
  postMessage('handled ' + e.data);
  if (e.data === 'first') close();
};
