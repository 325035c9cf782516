// The chapter's first example (10.1.2.1, "A background number-crunching worker"), as its
// worker.js is written, but for one change the Rust `primes` guest makes too: the chapter's
// worker searches forever, this one searches up to the limit it is sent ({"limit": N}), then
// closes.
onmessage = function (event) {
  var limit = event.data.limit;
  var n = 1;
  search: while (n < limit) {
    n += 1;
    for (var i = 2; i <= Math.sqrt(n); i += 1)
      if (n % i == 0)
       continue search;
    // found a prime!
    postMessage(n);
  }
  close();
};
