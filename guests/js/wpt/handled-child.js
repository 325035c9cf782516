// Handles its own errors and goes on.
onmessage = function (e) {
  if (e.data === 'throw') {
    throw new TypeError('handled here');
  }
  postMessage('still running');
};
self.onerror = function (message, filename, lineno, colno, error) {
  postMessage({ message: message, filename: filename, lineno: lineno, colno: colno, isError: error instanceof TypeError });
  return true;
};
