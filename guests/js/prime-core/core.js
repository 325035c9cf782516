// The delegation example's sub-worker in JavaScript, speaking the Rust `delegation` guest's
// protocol: sent {"from": F, "to": T}, it counts the primes in F..T by trial division, posts
// the count and closes. Built as core.wasm beside delegation.wasm, it is the Rust worker's
// JavaScript core.
onmessage = function (event) {
  var from = event.data.from, to = event.data.to, count = 0;
  search: for (var n = Math.max(from, 2); n < to; n += 1) {
    for (var i = 2; i * i <= n; i += 1)
      if (n % i == 0)
        continue search;
    count += 1;
  }
  postMessage(count);
  close();
};
