// Answers each message with what it saw, for the tests of message errors: `{"data": ...}` for
// a message it could read, `{"messageerror": true}` for one that could not be deserialized.
onmessage = function (event) {
  postMessage({ data: event.data });
};
onmessageerror = function () {
  postMessage({ messageerror: true });
};
