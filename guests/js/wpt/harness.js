// A small test harness in the style of WPT's testharness.js, for the worker conformance
// tests of this directory (loaded with importScripts('harness.js')). It has the parts of
// testharness.js these tests use: test, async_test, promise_test, the step functions, and
// the assertions. Each result is posted to the parent as {"test", "status", "message"}
// (status PASS, FAIL or TIMEOUT); once every test has a result, {"done": number of tests}
// is posted and the worker closes. A test without a result after 60 s times out.
(function () {
  var tests = [];
  var remaining = 0;
  var loaded = false;
  var TIMEOUT_MS = 60000;

  function AssertionError(message) {
    this.message = message;
  }
  AssertionError.prototype.toString = function () {
    return this.message;
  };

  function Test(name) {
    this.name = name;
    this.status = null;
    this.message = '';
    this.cleanups = [];
    var test = this;
    remaining += 1;
    tests.push(this);
    this.timer = setTimeout(function () {
      test.finish('TIMEOUT', 'no result within ' + TIMEOUT_MS + ' ms');
    }, TIMEOUT_MS);
  }
  Test.prototype.finish = function (status, message) {
    if (this.status !== null) return;
    this.status = status;
    this.message = message || '';
    clearTimeout(this.timer);
    this.cleanups.forEach(function (f) { try { f(); } catch (e) {} });
    postMessage({ test: this.name, status: this.status, message: this.message });
    remaining -= 1;
    maybeDone();
  };
  Test.prototype.step = function (f, thisObj) {
    if (this.status !== null) return undefined;
    try {
      return f.apply(thisObj === undefined ? this : thisObj, Array.prototype.slice.call(arguments, 2));
    } catch (e) {
      this.finish('FAIL', String(e && e.message !== undefined ? e.message : e));
      return undefined;
    }
  };
  Test.prototype.step_func = function (f, thisObj) {
    var test = this;
    return function () {
      return test.step.apply(test, [f, thisObj === undefined ? this : thisObj].concat(Array.prototype.slice.call(arguments)));
    };
  };
  Test.prototype.step_func_done = function (f, thisObj) {
    var test = this;
    return function () {
      if (f) test.step.apply(test, [f, thisObj === undefined ? this : thisObj].concat(Array.prototype.slice.call(arguments)));
      test.done();
    };
  };
  Test.prototype.unreached_func = function (description) {
    var test = this;
    return function () {
      test.finish('FAIL', 'reached unreached_func: ' + (description || ''));
    };
  };
  Test.prototype.step_timeout = function (f, ms) {
    var test = this;
    return setTimeout(function () { test.step(f); }, ms);
  };
  Test.prototype.add_cleanup = function (f) {
    this.cleanups.push(f);
  };
  Test.prototype.done = function () {
    this.finish('PASS');
  };

  function maybeDone() {
    if (loaded && remaining === 0) {
      postMessage({ done: tests.length });
      close();
    }
  }

  self.test = function (f, name) {
    var t = new Test(name);
    t.step(f, t, t);
    t.done();
  };
  self.async_test = function (f, name) {
    if (typeof f !== 'function') return new Test(f);
    var t = new Test(name);
    t.step(f, t, t);
    return t;
  };
  self.promise_test = function (f, name) {
    var t = new Test(name);
    Promise.resolve()
      .then(function () { return f(t); })
      .then(function () { t.done(); }, function (e) { t.finish('FAIL', String(e && e.message !== undefined ? e.message : e)); });
  };

  function show(v) {
    try {
      return typeof v === 'string' ? JSON.stringify(v) : typeof v === 'bigint' ? v + 'n' : String(v);
    } catch (e) {
      return '[value]';
    }
  }
  function assert(ok, message) {
    if (!ok) throw new AssertionError(message);
  }
  self.assert_true = function (v, d) { assert(v === true, (d || '') + ' expected true got ' + show(v)); };
  self.assert_false = function (v, d) { assert(v === false, (d || '') + ' expected false got ' + show(v)); };
  self.assert_equals = function (a, e, d) { assert(Object.is(a, e), (d || '') + ' expected ' + show(e) + ' but got ' + show(a)); };
  self.assert_not_equals = function (a, e, d) { assert(!Object.is(a, e), (d || '') + ' got disallowed value ' + show(a)); };
  self.assert_array_equals = function (a, e, d) {
    assert(a.length === e.length, (d || '') + ' lengths differ: expected ' + e.length + ' got ' + a.length);
    for (var i = 0; i < e.length; i += 1) assert(Object.is(a[i], e[i]), (d || '') + ' at ' + i + ' expected ' + show(e[i]) + ' got ' + show(a[i]));
  };
  self.assert_unreached = function (d) { assert(false, 'reached unreachable code: ' + (d || '')); };
  self.assert_throws_dom = function (name, f, d) {
    try {
      f();
    } catch (e) {
      assert(e && e.name === name, (d || '') + ' expected a ' + name + ' but got ' + show(e && e.name) + ': ' + show(e && e.message));
      assert(typeof DOMException !== 'function' || e instanceof DOMException, (d || '') + ' expected a DOMException');
      return;
    }
    assert(false, (d || '') + ' expected a ' + name + ', nothing was thrown');
  };
  self.assert_throws_js = function (type, f, d) {
    try {
      f();
    } catch (e) {
      assert(e instanceof type, (d || '') + ' expected a ' + type.name + ' but got ' + show(e));
      return;
    }
    assert(false, (d || '') + ' expected a ' + type.name + ', nothing was thrown');
  };

  // After the test script's top level has run: the tests it defined are all known.
  setTimeout(function () {
    loaded = true;
    maybeDone();
  }, 0);
})();
