onmessage = function (e) {
  postMessage(self.name + ' got ' + e.data);
};
