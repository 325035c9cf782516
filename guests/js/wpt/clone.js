// What structuredClone carries crosses between JavaScript workers: Map, Set, Date, RegExp,
// BigInt, undefined, typed arrays, nested and cyclic objects. (WPT
// html/webappapis/structured-clone/structured-clone.any.js, in a worker)
importScripts('harness.js');

var cases = [
  ['undefined', undefined],
  ['a BigInt', 12345678901234567890n],
  ['a Map', new Map([[1, 'one'], ['two', { n: 2 }]])],
  ['a Set', new Set([1, 'a', null])],
  ['a Date', new Date(1700000000000)],
  ['a RegExp', /ab+c/gi],
  ['a typed array', new Float64Array([1.5, -0, NaN])],
  ['-0 and NaN', [-0, NaN, Infinity]],
  ['a sparse array', [1, , 3]],
];

cases.forEach(function (c) {
  async_test(function (t) {
    var worker = new Worker('echo-child.js');
    worker.onmessage = t.step_func_done(function (e) {
      var got = e.data, want = c[1];
      if (want instanceof Map) {
        assert_true(got instanceof Map, 'a Map');
        assert_equals(got.get(1), 'one');
        assert_equals(got.get('two').n, 2);
      } else if (want instanceof Set) {
        assert_true(got instanceof Set, 'a Set');
        assert_array_equals(Array.from(got), Array.from(want));
      } else if (want instanceof Date) {
        assert_true(got instanceof Date, 'a Date');
        assert_equals(got.getTime(), want.getTime());
      } else if (want instanceof RegExp) {
        assert_true(got instanceof RegExp, 'a RegExp');
        assert_equals(got.source, 'ab+c');
        assert_equals(got.flags, 'gi');
      } else if (want instanceof Float64Array) {
        assert_true(got instanceof Float64Array, 'a Float64Array');
        assert_array_equals(Array.from(got), Array.from(want));
      } else if (Array.isArray(want)) {
        assert_equals(got.length, want.length, 'length');
        for (var i = 0; i < want.length; i += 1) {
          assert_equals(i in got, i in want, 'hole at ' + i);
          assert_equals(got[i], want[i], 'at ' + i);
        }
      } else {
        assert_equals(got, want);
      }
    });
    worker.postMessage(c[1]);
  }, 'structured clone of ' + c[0]);
});

async_test(function (t) {
  var worker = new Worker('echo-child.js');
  var a = { name: 'a' };
  a.self = a;
  var shared = { n: 1 };
  a.list = [shared, shared];
  worker.onmessage = t.step_func_done(function (e) {
    assert_equals(e.data.self, e.data, 'the cycle is kept');
    assert_equals(e.data.list[0], e.data.list[1], 'shared references stay shared');
    assert_equals(e.data.list[0].n, 1);
  });
  worker.postMessage(a);
}, 'structured clone of cyclic and shared objects');
