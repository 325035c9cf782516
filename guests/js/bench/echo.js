// Answers every message with its data, for the JavaScript workers' benchmarks (spawn to
// first message, round trip, throughput).
onmessage = function (event) {
  postMessage(event.data);
};
