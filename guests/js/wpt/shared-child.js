var connections = 0;
onconnect = function (e) {
  connections += 1;
  e.ports[0].postMessage('connection ' + connections + ' of ' + self.name + ': data ' + JSON.stringify(e.data) + ' ports ' + e.ports.length);
};
