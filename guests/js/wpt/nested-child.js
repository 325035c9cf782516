var grandchild = new Worker('nested-grandchild.js', { name: 'grandchild' });
grandchild.onmessage = function (e) {
  postMessage(e.data + ', via ' + self.name);
};
onmessage = function (e) {
  grandchild.postMessage(e.data);
};
