'use strict';
// A strict script: its top-level functions are its own, but a handler it declares is its
// global's handler, as in a browser.
function onmessage(e) {
  postMessage('strict ' + e.data);
}
