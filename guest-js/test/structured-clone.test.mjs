// Tests of the structured-clone codec: node --test guest-js/test/
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { serialize, deserialize, isJsonExact, DataCloneError } from '../structured-clone.js';

const roundTrip = (v, transfer, isPort) => {
  const { bytes, transferred, ports } = serialize(v, transfer, isPort);
  return deserialize(bytes, transferred, ports);
};

// Round trip, and the same as Node's own structuredClone.
const same = (v) => {
  const r = roundTrip(v);
  assert.deepStrictEqual(r, structuredClone(v));
  return r;
};

const throwsClone = (fn, re) =>
  assert.throws(fn, (e) => {
    assert.ok(e instanceof DataCloneError, `not a DataCloneError: ${e}`);
    assert.equal(e.name, 'DataCloneError');
    if (re) assert.match(e.message, re);
    return true;
  });

const detach = (ab) => (typeof ab.transfer === 'function' ? ab.transfer() : structuredClone(ab, { transfer: [ab] }));

describe('primitives', () => {
  test('undefined, null, booleans', () => {
    for (const v of [undefined, null, true, false]) assert.equal(roundTrip(v), v);
  });

  test('numbers', () => {
    const values = [
      0, 1, -1, 63, 64, -64, -65, 127, 128, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 53,
      -(2 ** 53), 1.5, -0.1, Math.PI, Number.MIN_VALUE, Number.MAX_VALUE, Number.EPSILON, NaN, Infinity, -Infinity,
    ];
    for (const v of values) assert.ok(Object.is(roundTrip(v), v), `${v}`);
    assert.ok(Object.is(roundTrip(-0), -0));
    assert.ok(Object.is(roundTrip([-0])[0], -0));
    assert.equal(serialize(5).bytes.length, 3); // version, tag, varint
  });

  test('bigints', () => {
    const values = [0n, 1n, -1n, 127n, 128n, 255n, 256n, -256n, 2n ** 63n, -(2n ** 64n), 2n ** 200n + 12345n, -(3n ** 1000n)];
    for (const v of values) assert.equal(roundTrip(v), v);
  });

  test('strings', () => {
    const values = [
      '', 'a', 'hello', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(33), 'a'.repeat(100000), 'héllo', 'é'.repeat(40),
      '日本語テキスト', '😀 emoji 🎉', '\0nul\0', '\uFEFFbom first', 'mixed ascii then ü'.repeat(500),
      '\u007f\u0080\u07ff\u0800\uffff',
    ];
    for (const v of values) assert.equal(roundTrip(v), v);
  });

  test('lone surrogates round-trip exactly', () => {
    const values = [
      '\uD800', '\uDFFF', 'a\uDC00b', '\uDBFF\uDFFF', '\uD83D', 'x\uD83D\uDE00\uD83Dy', '\uDE00\uD83D',
      'long '.repeat(2000) + '\uD800' + ' tail'.repeat(2000), '\uD800'.repeat(10000),
    ];
    for (const v of values) {
      const r = roundTrip(v);
      assert.equal(r.length, v.length);
      assert.equal(r, v);
    }
    assert.deepEqual(roundTrip({ '\uD800key': '\uDC00' }), { '\uD800key': '\uDC00' });
  });

  test('symbols and functions are not cloneable', () => {
    throwsClone(() => serialize(Symbol('q')), /^Symbol\(q\) could not be cloned\.$/);
    throwsClone(() => serialize(function () {}), /^function \(\) \{\} could not be cloned\.$/);
    throwsClone(() => serialize(() => 1), /could not be cloned/);
    throwsClone(() => serialize(class A {}), /could not be cloned/);
    throwsClone(() => serialize(async function f() {}), /could not be cloned/);
    throwsClone(() => serialize({ a: [1, { f() {} }] }), /could not be cloned/);
    throwsClone(() => serialize(new Map([[1, Symbol.iterator]])), /could not be cloned/);
  });
});

describe('objects', () => {
  test('wrapper objects', () => {
    for (const v of [new Boolean(false), new Boolean(true), new Number(-0), new Number(NaN), new Number(3.5),
      new String(''), new String('x\uD800y'), Object(10n), Object(-(2n ** 100n))]) {
      const r = same(v);
      assert.equal(typeof r, 'object');
      assert.ok(Object.is(r.valueOf(), v.valueOf()));
      assert.equal(Object.getPrototypeOf(r), Object.getPrototypeOf(v));
    }
  });

  test('dates, including invalid', () => {
    for (const v of [new Date(0), new Date(), new Date(-8.64e15), new Date(8.64e15), new Date(NaN), new Date('nope')]) {
      // (assert cannot compare invalid dates: NaN times are never equal to it)
      const r = Number.isNaN(v.getTime()) ? roundTrip(v) : same(v);
      assert.ok(r instanceof Date);
      assert.ok(Object.is(r.getTime(), v.getTime()));
    }
  });

  test('regular expressions', () => {
    const values = [/a+b/gi, /\//u, new RegExp('/'), /[\n]\s*$/m, /x/dgimsuy, new RegExp(''), /\p{L}+/u];
    try {
      values.push(new RegExp('[\\p{L}--[a-z]]', 'v'));
    } catch {
      // no v flag here
    }
    for (const v of values) {
      v.lastIndex = 3;
      const r = same(v);
      assert.equal(r.source, v.source);
      assert.equal(r.flags, v.flags);
      assert.equal(r.lastIndex, 0);
      assert.equal(r.test('aab'), new RegExp(v.source, v.flags).test('aab'));
    }
  });

  test('plain objects: keys in order, only own enumerable string keys', () => {
    same({});
    same({ b: 1, a: 2, 10: 'ten', 2: 'two', '': 'empty', 'with space': [] });
    const o = { visible: 1, [Symbol('s')]: 2 };
    Object.defineProperty(o, 'hidden', { value: 3, enumerable: false });
    const r = same(o);
    assert.deepEqual(Object.getOwnPropertyNames(r), ['visible']);
    assert.deepEqual(Object.keys(roundTrip({ z: 1, y: 2, 1: 3, x: 4 })), ['1', 'z', 'y', 'x']);
  });

  test('an own __proto__ key stays an own property', () => {
    const o = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    const r = roundTrip(o);
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
    assert.ok(Object.hasOwn(r, '__proto__'));
    assert.deepEqual(r.__proto__, { polluted: true });
    assert.equal({}.polluted, undefined);
  });

  test('getters are read; null-prototype objects and class instances become plain objects', () => {
    let reads = 0;
    const g = { get x() { reads++; return 42; } };
    assert.deepEqual(same(g), { x: 42 });
    assert.equal(reads, 2);
    const n = Object.create(null);
    n.a = 1;
    const rn = same(n);
    assert.equal(Object.getPrototypeOf(rn), Object.prototype);
    class Point {
      constructor() {
        this.x = 1;
        this.y = 2;
      }
      get norm() {
        return 3;
      }
    }
    const rp = same(new Point());
    assert.equal(Object.getPrototypeOf(rp), Object.prototype);
    assert.deepEqual(rp, { x: 1, y: 2 });
    assert.deepEqual(same(Math), {});
  });

  test('key strings are written once per message', () => {
    const rows = Array.from({ length: 100 }, (_, i) => ({ identifier: i, description: 'd' }));
    const { bytes } = serialize(rows);
    const text = String.fromCharCode(...bytes);
    assert.equal(text.split('identifier').length, 2);
    assert.equal(text.split('description').length, 2);
    assert.ok(bytes.length < 100 * 10 + 30, `${bytes.length} bytes`);
    same(rows);
    same([{ a: 1, b: { a: 2, c: { b: 3, a: 4 } } }, { c: 5 }]);
  });

  test('arrays: dense, holes, sparse, extra properties', () => {
    same([]);
    same([1, 'two', [3], { four: 4 }, null, undefined]);
    const withUndefined = roundTrip([undefined, undefined]);
    assert.ok(0 in withUndefined && 1 in withUndefined);
    const holes = roundTrip([1, , 3, , ]); // eslint-disable-line no-sparse-arrays
    assert.equal(holes.length, 4);
    assert.ok(!(1 in holes) && !(3 in holes));
    same([, , ]); // eslint-disable-line no-sparse-arrays
    const sparse = [];
    sparse[1000000] = 'far';
    const { bytes } = serialize(sparse);
    assert.ok(bytes.length < 20);
    const rs = same(sparse);
    assert.equal(rs.length, 1000001);
    assert.deepEqual(Object.keys(rs), ['1000000']);
    const extra = [1, 2, 3];
    extra.name = 'x';
    extra[-1] = 'minus';
    extra['4294967295'] = 'not an index';
    const re = same(extra);
    assert.deepEqual(Object.keys(re), ['0', '1', '2', 'name', '-1', '4294967295']);
    const big = [];
    big[3000000000] = 1;
    big[5] = 2;
    big[2147483647] = 3;
    big[2147483648] = 4;
    const rb = same(big);
    assert.equal(rb.length, 3000000001);
    assert.equal(rb[3000000000], 1);
    const long = new Array(4294967295);
    assert.equal(roundTrip(long).length, 4294967295);
    class MyArray extends Array {}
    const ma = MyArray.from([1, 2]);
    const rma = roundTrip(ma);
    assert.equal(Object.getPrototypeOf(rma), Array.prototype);
    assert.deepEqual(rma, [1, 2]);
    const nonEnumerable = [1, 2, 3];
    Object.defineProperty(nonEnumerable, 1, { value: 9, enumerable: false });
    const rne = same(nonEnumerable);
    assert.ok(!(1 in rne));
  });

  test('Map and Set', () => {
    const key = { k: 1 };
    const m = new Map([[1, 'one'], ['1', 'string one'], [key, key], [NaN, -0], [undefined, null], [[1], new Set([1])]]);
    const rm = same(m);
    assert.deepEqual([...rm.keys()].map((k) => typeof k), [...m.keys()].map((k) => typeof k));
    const rk = [...rm.keys()][2];
    assert.equal(rm.get(rk), rk);
    assert.ok(rm.has(NaN));
    assert.ok(Object.is(rm.get(NaN), -0));
    const s = new Set([1, '1', 1n, null, undefined, key, NaN]);
    same(s);
    same(new Map());
    same(new Set());
    const extra = new Map([[1, 2]]);
    extra.prop = 'dropped';
    assert.equal(roundTrip(extra).prop, undefined);
  });

  test('errors', () => {
    for (const C of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError]) {
      const e = new C('message of ' + C.name);
      const r = same(e);
      assert.equal(Object.getPrototypeOf(r), C.prototype);
      assert.equal(r.message, e.message);
      assert.equal(r.name, C.name);
      assert.equal(r.stack, e.stack);
      assert.equal(Object.getOwnPropertyDescriptor(r, 'message').enumerable, false);
    }
    const noMessage = roundTrip(new Error());
    assert.ok(!Object.hasOwn(noMessage, 'message'));
    const renamed = new RangeError('r');
    renamed.name = 'Custom';
    assert.equal(Object.getPrototypeOf(roundTrip(renamed)), Error.prototype);
    const typeNamed = new Error('t');
    typeNamed.name = 'TypeError';
    assert.equal(Object.getPrototypeOf(roundTrip(typeNamed)), TypeError.prototype);
    class MyError extends TypeError {}
    assert.equal(Object.getPrototypeOf(same(new MyError('mine'))), TypeError.prototype);
    assert.equal(Object.getPrototypeOf(same(new AggregateError([], 'agg'))), Error.prototype);
    const withCause = roundTrip(new Error('outer', { cause: { inner: [1] } }));
    assert.deepEqual(withCause.cause, { inner: [1] });
    assert.equal(Object.getOwnPropertyDescriptor(withCause, 'cause').enumerable, false);
    const expando = new Error('x');
    expando.code = 'E_X';
    assert.equal(roundTrip(expando).code, undefined);
    const message = new Error('x');
    message.message = 12;
    assert.equal(roundTrip(message).message, '12');
    const noStack = new Error('s');
    Object.defineProperty(noStack, 'stack', { value: undefined });
    assert.equal(roundTrip(noStack).message, 's');
  });

  test('uncloneable objects', () => {
    for (const v of [new WeakMap(), new WeakSet(), Promise.resolve(), new WeakRef({}), Object(Symbol('w')),
      new FinalizationRegistry(() => {}), new Map().keys(), (function* () {})(), new SharedArrayBuffer(4),
      new Uint8Array(new SharedArrayBuffer(4))]) {
      throwsClone(() => serialize(v), /could not be cloned/);
      throwsClone(() => serialize({ nested: [v] }), /could not be cloned/);
    }
    throwsClone(() => serialize(new WeakMap()), /^#<WeakMap> could not be cloned\.$/);
  });
});

describe('binary data', () => {
  test('ArrayBuffer', () => {
    const ab = new Uint8Array([1, 2, 3, 250]).buffer;
    const r = same(ab);
    assert.ok(r instanceof ArrayBuffer);
    assert.notEqual(r, ab);
    assert.deepEqual([...new Uint8Array(r)], [1, 2, 3, 250]);
    same(new ArrayBuffer(0));
    same(new ArrayBuffer(100000));
  });

  test('resizable ArrayBuffer', { skip: !('resizable' in ArrayBuffer.prototype) }, () => {
    const ab = new ArrayBuffer(4, { maxByteLength: 64 });
    new Uint8Array(ab).set([9, 8, 7, 6]);
    const r = same(ab);
    assert.equal(r.resizable, true);
    assert.equal(r.maxByteLength, 64);
    assert.deepEqual([...new Uint8Array(r)], [9, 8, 7, 6]);
  });

  test('every typed array and DataView', () => {
    const ctors = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
      Float32Array, Float64Array];
    if (typeof Float16Array === 'function') ctors.push(Float16Array);
    for (const C of ctors) {
      const v = C.from([0, 1, -1, 127, 200, 3.5, NaN].map((x) => (Number.isNaN(x) && !C.name.startsWith('Float') ? 0 : x)));
      const r = same(v);
      assert.equal(Object.getPrototypeOf(r), C.prototype);
      same(new C(0));
      const buffer = new ArrayBuffer(64);
      const inner = new C(buffer, 8, 4);
      const ri = same(inner);
      assert.equal(ri.byteOffset, 8);
      assert.equal(ri.length, 4);
      assert.equal(ri.buffer.byteLength, 64);
    }
    for (const C of [BigInt64Array, BigUint64Array]) {
      const r = same(C.from([0n, 1n, 2n ** 63n - 1n, C === BigInt64Array ? -5n : 2n ** 64n - 1n]));
      assert.equal(Object.getPrototypeOf(r), C.prototype);
    }
    const dv = new DataView(new ArrayBuffer(16), 4, 8);
    dv.setFloat64(0, Math.E);
    const rdv = same(dv);
    assert.ok(rdv instanceof DataView);
    assert.equal(rdv.byteOffset, 4);
    assert.equal(rdv.byteLength, 8);
    assert.equal(rdv.getFloat64(0), Math.E);
    same(new DataView(new ArrayBuffer(0)));
  });

  test('views on one buffer share one buffer', () => {
    const buffer = new ArrayBuffer(16);
    new Uint8Array(buffer).set([...Array(16).keys()]);
    const value = { a: new Uint8Array(buffer, 2, 4), b: new Uint16Array(buffer, 4, 2), c: new DataView(buffer), buffer };
    const r = same(value);
    assert.equal(r.a.buffer, r.b.buffer);
    assert.equal(r.a.buffer, r.c.buffer);
    assert.equal(r.a.buffer, r.buffer);
    assert.deepEqual([...r.a], [2, 3, 4, 5]);
    r.a[2] = 99;
    assert.equal(r.c.getUint8(4), 99);
    // the buffer is written once
    assert.ok(serialize(value).bytes.length < 16 + 40);
  });

  test('detached buffers are not cloneable', () => {
    const ab = new ArrayBuffer(8);
    const view = new Uint8Array(ab);
    detach(ab);
    throwsClone(() => serialize(ab), /detached/);
    throwsClone(() => serialize({ view }), /detached/);
    throwsClone(() => serialize(null, [ab]), /detached/);
    assert.equal(roundTrip(new ArrayBuffer(0)).byteLength, 0); // empty but not detached
  });
});

describe('references', () => {
  test('cycles', () => {
    const o = { name: 'o' };
    o.self = o;
    const r = same(o);
    assert.equal(r.self, r);
    const a = [1];
    a.push(a);
    const ra = same(a);
    assert.equal(ra[1], ra);
    const m = new Map();
    m.set(m, m);
    const rm = roundTrip(m);
    assert.equal(rm.get(rm), rm);
    const s = new Set();
    s.add(s);
    const rs = roundTrip(s);
    assert.ok(rs.has(rs));
    const e = new Error('cyclic');
    e.cause = e;
    const re = roundTrip(e);
    assert.equal(re.cause, re);
    const sparse = [];
    sparse[10] = sparse;
    sparse.me = sparse;
    const rsp = roundTrip(sparse);
    assert.equal(rsp[10], rsp);
    assert.equal(rsp.me, rsp);
  });

  test('shared references keep their identity', () => {
    const shared = { x: 1 };
    const date = new Date(5);
    const str = new String('s');
    const v = { a: shared, b: [shared, date], c: new Map([[shared, date]]), d: str, e: str, f: new Set([shared]) };
    const r = same(v);
    assert.equal(r.a, r.b[0]);
    assert.equal(r.b[1], r.c.get(r.a));
    assert.equal(r.d, r.e);
    assert.ok(r.f.has(r.a));
  });

  test('a getter that serializes too (re-entrancy)', () => {
    const inner = { deep: [1, 2, 'three'] };
    const outer = {
      before: 'x'.repeat(50),
      get nested() {
        return deserialize(serialize(inner).bytes);
      },
      after: new Map([[1, 2]]),
    };
    assert.deepEqual(roundTrip(outer), { before: 'x'.repeat(50), nested: inner, after: new Map([[1, 2]]) });
  });

  test('a composite value is what Node clones', () => {
    const buffer = new ArrayBuffer(8);
    const value = {
      n: [0, -0, 1.5, NaN, -Infinity, 2 ** 40], b: [10n, new Boolean(true)], s: ['', 'ü', '\uD800'],
      d: new Date(1e12), r: /q/y, m: new Map([['k', { v: new Set(['a']) }]]), t: [new Float32Array(buffer), new Uint8Array(buffer)],
      e: new SyntaxError('bad'), u: undefined, nul: null, nested: { deeper: { deepest: [[[]]] } },
    };
    same(value);
    let deep = [];
    for (let i = 0; i < 1000; i++) deep = [deep];
    same(deep);
  });
});

describe('transfer', () => {
  test('transferred buffers are written by reference, not copied or detached', () => {
    const a = new ArrayBuffer(1000);
    const b = new ArrayBuffer(2000);
    new Uint8Array(a)[0] = 7;
    const value = { a, view: new Uint8Array(b, 10, 5), again: a };
    const { bytes, transferred, ports } = serialize(value, [b, a]);
    assert.ok(bytes.length < 40);
    assert.deepEqual(transferred, [b, a]);
    assert.equal(transferred[0], b);
    assert.equal(transferred[1], a);
    assert.deepEqual(ports, []);
    assert.equal(a.byteLength, 1000); // not detached by serialize
    const a2 = new ArrayBuffer(1000);
    const b2 = new ArrayBuffer(2000);
    const r = deserialize(bytes, [b2, a2]);
    assert.equal(r.a, a2);
    assert.equal(r.again, a2);
    assert.equal(r.view.buffer, b2);
    assert.equal(r.view.byteOffset, 10);
    assert.equal(r.view.length, 5);
    throwsClone(() => deserialize(bytes, [b2]), /not received/);
    throwsClone(() => deserialize(bytes, [b2, {}]), /not an ArrayBuffer/);
  });

  test('a buffer only in the transfer list', () => {
    const ab = new ArrayBuffer(4);
    const { bytes, transferred } = serialize(1, [ab]);
    assert.deepEqual(transferred, [ab]);
    assert.equal(deserialize(bytes, transferred), 1);
  });

  test('duplicates and bad entries in the transfer list', () => {
    const ab = new ArrayBuffer(4);
    throwsClone(() => serialize(ab, [ab, ab]), /duplicate/);
    const port = { port: true };
    throwsClone(() => serialize(port, [port, port]), /duplicate/);
    assert.throws(() => serialize(1, [1]), TypeError);
    assert.throws(() => serialize(1, [null]), TypeError);
  });

  test('a failed serialize leaves transferred buffers usable', () => {
    const ab = new ArrayBuffer(4);
    throwsClone(() => serialize({ ab, f() {} }, [ab]));
    assert.equal(ab.byteLength, 4);
    assert.equal(new Uint8Array(ab).length, 4);
  });

  test('ports', () => {
    class FakePort {
      constructor(id) {
        this.id = id;
      }
    }
    const isPort = (o) => o instanceof FakePort;
    const p1 = new FakePort(1);
    const p2 = new FakePort(2);
    const ab = new ArrayBuffer(1);
    const { bytes, transferred, ports } = serialize({ p1, list: [p2, p1], ab }, [p2, ab, p1], isPort);
    assert.deepEqual(ports, [p2, p1]);
    assert.equal(ports[0], p2);
    assert.deepEqual(transferred, [ab]);
    const q1 = { received: 1 };
    const q2 = { received: 2 };
    const r = deserialize(bytes, transferred, [q2, q1]);
    assert.equal(r.p1, q1);
    assert.equal(r.list[0], q2);
    assert.equal(r.list[1], q1);
    assert.equal(r.ab, transferred[0]);
    throwsClone(() => deserialize(bytes, transferred, [q2]), /not received/);
    // a port that is not transferred
    throwsClone(() => serialize({ p1 }, [], isPort), /must be in the transfer list/);
    throwsClone(() => serialize([p1, p2], [p1], isPort), /must be in the transfer list/);
    // with isPort, a transfer entry that is neither a buffer nor a port
    throwsClone(() => serialize(1, [{}], isPort), /transferable/);
    // without isPort, non-buffer entries are taken as ports
    const placeholder = { placeholder: true };
    const plain = serialize([placeholder], [placeholder]);
    assert.deepEqual(plain.ports, [placeholder]);
    const rp = deserialize(plain.bytes, [], ['the port']);
    assert.deepEqual(rp, ['the port']);
  });
});

describe('malformed input', () => {
  const samples = [
    1, -123456, 1.5, 2n ** 100n, 'ascii', 'ü and more text here', '\uD800 lone', [1, [2, [3]]],
    { a: 1, b: { a: 2 }, s: 'x' }, new Map([[1, new Set([2])]]), new Date(3), /re/g, new Error('e', { cause: 1 }),
    (() => {
      const b = new ArrayBuffer(8);
      return [new Uint16Array(b, 2, 2), new DataView(b), b];
    })(),
    (() => {
      const a = [1, , 3]; // eslint-disable-line no-sparse-arrays
      a.x = a;
      return a;
    })(),
    [new Boolean(true), new Number(2), new String('s'), Object(3n)],
  ];

  test('every truncation throws a DataCloneError', () => {
    for (const v of samples) {
      const { bytes } = serialize(v);
      for (let n = 0; n < bytes.length; n++) {
        throwsClone(() => deserialize(bytes.subarray(0, n)));
      }
    }
  });

  test('bad version, trailing bytes, unknown tags', () => {
    const { bytes } = serialize({ a: 1 });
    const bad = bytes.slice();
    bad[0] = 2;
    throwsClone(() => deserialize(bad), /version/);
    throwsClone(() => deserialize(new Uint8Array([...bytes, 0])), /after the value/);
    throwsClone(() => deserialize(new Uint8Array([1, 0xff])), /unknown tag/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x1a])), /unknown tag/);
    throwsClone(() => deserialize(new Uint8Array([])), /no bytes/);
    throwsClone(() => deserialize('not bytes'));
  });

  test('lengths larger than the input', () => {
    const huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
    for (const tag of [0x07, 0x09, 0x0a, 0x0c, 0x0d, 0x14, 0x13, 0x06]) {
      throwsClone(() => deserialize(new Uint8Array([1, tag, ...huge])));
      throwsClone(() => deserialize(new Uint8Array([1, tag, 0xff, 0xff, 0xff, 0x7f])));
    }
    // a varint of more than 8 bytes, and one above 2^53
    throwsClone(() => deserialize(new Uint8Array([1, 0x09, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), /varint/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])), /varint/);
    // a sparse array claiming a length of 2^32
    throwsClone(() => deserialize(new Uint8Array([1, 0x0b, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00])), /length/);
    // a resizable buffer that asks for too much
    throwsClone(() => deserialize(new Uint8Array([1, 0x15, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f])), /maxByteLength/);
  });

  test('bad references and structure', () => {
    throwsClone(() => deserialize(new Uint8Array([1, 0x08, 0x00])), /reference/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x09, 0x01, 0x02, 0x00])), /key reference/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x07, 0x02])), /key reference/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x07, 0x03])), /kind/);
    // a view whose buffer is the view itself
    throwsClone(() => deserialize(new Uint8Array([1, 0x16, 0x01, 0x08, 0x00, 0x00, 0x00])), /not yet read/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x16, 0x01, 0x09, 0x00, 0x00, 0x00])), /not an ArrayBuffer/);
    // a view out of its buffer, a misaligned one, an unknown kind
    throwsClone(() => deserialize(new Uint8Array([1, 0x16, 0x01, 0x14, 0x02, 0, 0, 0x01, 0x02])), /out of its buffer/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x16, 0x03, 0x14, 0x04, 0, 0, 0, 0, 0x01, 0x02])), /misaligned/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x16, 0x63, 0x14, 0x00, 0x00, 0x00])), /view kind/);
    // invalid UTF-8
    throwsClone(() => deserialize(new Uint8Array([1, 0x07, 0x08, 0xc3, 0x28])));
    // a bad regular expression
    throwsClone(() => deserialize(new Uint8Array([1, 0x0f, 0x04, 0x28, 0x00])));
    throwsClone(() => deserialize(new Uint8Array([1, 0x0f, 0x00, 0x04, 0x51])));
    // an unknown error name, and unknown error flags
    throwsClone(() => deserialize(new Uint8Array([1, 0x17, 0x07, 0x00])), /error name/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x17, 0x00, 0x08])), /flags/);
    // a Boolean object that is 2
    throwsClone(() => deserialize(new Uint8Array([1, 0x10, 0x02])), /Boolean/);
    // a sparse-array key that is neither an index nor a string
    throwsClone(() => deserialize(new Uint8Array([1, 0x0b, 0x01, 0x01, 0x01, 0x00])), /array key/);
    throwsClone(() => deserialize(new Uint8Array([1, 0x0b, 0x01, 0x01, 0x04, 0x01, 0x00])), /negative/);
    // an int above 32 bits
    throwsClone(() => deserialize(new Uint8Array([1, 0x04, 0x80, 0x80, 0x80, 0x80, 0x10])), /int/);
  });

  test('very deep nesting is an error, not a crash', () => {
    const depth = 1000000;
    const bytes = new Uint8Array(depth * 2 + 2);
    bytes[0] = 1;
    for (let i = 0; i < depth; i++) {
      bytes[1 + 2 * i] = 0x0a;
      bytes[2 + 2 * i] = 0x01;
    }
    bytes[1 + 2 * depth] = 0x00;
    throwsClone(() => deserialize(bytes.subarray(0, depth * 2 + 2)));
  });

  test('random bytes either decode or throw a DataCloneError', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 16;
    };
    const encodings = samples.map((v) => serialize(v).bytes);
    for (let i = 0; i < 5000; i++) {
      let bytes;
      if (i % 2 === 0) {
        bytes = new Uint8Array(1 + (rand() % 40));
        for (let j = 0; j < bytes.length; j++) bytes[j] = rand() % 0x1c;
        bytes[0] = 1;
      } else {
        bytes = encodings[rand() % encodings.length].slice();
        const flips = 1 + (rand() % 3);
        for (let f = 0; f < flips; f++) bytes[1 + (rand() % (bytes.length - 1))] = rand() & 0xff;
      }
      try {
        deserialize(bytes, [new ArrayBuffer(8)], [{}]);
      } catch (e) {
        assert.ok(e instanceof DataCloneError, `${e} for ${bytes}`);
      }
    }
  });
});

describe('isJsonExact', () => {
  test('truth table', () => {
    const cyclic = { a: 1 };
    cyclic.self = cyclic;
    const cyclicArray = [];
    cyclicArray.push([cyclicArray]);
    const shared = { s: 1 };
    const withExtra = [1, 2];
    withExtra.x = 1;
    const nullProto = Object.create(null);
    nullProto.k = 'v';
    let deep = { leaf: true };
    for (let i = 0; i < 1000; i++) deep = { deep };
    let deepCycle = {};
    const bottom = deepCycle;
    for (let i = 0; i < 1000; i++) deepCycle = { next: deepCycle };
    bottom.back = deepCycle;
    class K {
      constructor() {
        this.a = 1;
      }
    }
    const rows = [
      [null, true], [true, true], [false, true], ['', true], ['\uD800', true], [0, true], [-1.5, true],
      [Number.MAX_VALUE, true], [{}, true], [[], true], [{ a: [1, 'x', { b: null }] }, true],
      [[shared, shared], true], [nullProto, true], [deep, true], [JSON.parse('{"__proto__": 1}'), true],
      [{ get g() { return 1; } }, true],
      [undefined, false], [-0, false], [NaN, false], [Infinity, false], [-Infinity, false], [1n, false],
      [Symbol('s'), false], [() => {}, false], [{ a: undefined }, false], [[undefined], false], [[1, , 3], false], // eslint-disable-line no-sparse-arrays
      [withExtra, false], [cyclic, false], [cyclicArray, false], [deepCycle, false], [new Date(0), false],
      [/x/, false], [new Map(), false], [new Set(), false], [new Uint8Array(1), false], [new ArrayBuffer(1), false],
      [new Error('e'), false], [new K(), false], [new String('s'), false], [new Number(1), false], [{ a: [-0] }, false],
      [{ a: { b: { c: NaN } } }, false], [{ f() {} }, false], [{ get g() { throw new Error('no'); } }, false],
      [Object.setPrototypeOf([], Object.prototype), false], [Object.setPrototypeOf({}, Array.prototype), false],
      [Object.assign(new (class extends Array {})(), { 0: 1 }), false],
    ];
    for (const [v, expected] of rows) {
      assert.equal(isJsonExact(v), expected, `row ${rows.findIndex((row) => row[0] === v)}`);
      // (JSON gives a null-prototype object back with Object.prototype)
      if (expected) assert.deepEqual(JSON.parse(JSON.stringify(v)), v === nullProto ? { ...v } : v);
    }
  });

  test('agrees with a JSON round trip on generated values', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 16) / 65536;
    };
    const leaves = [0, 1, -0, 2.5, NaN, null, true, 'x', undefined, Infinity];
    const gen = (depth) => {
      const r = rand();
      if (depth > 3 || r < 0.4) return leaves[Math.floor(rand() * leaves.length)];
      if (r < 0.7) return Array.from({ length: Math.floor(rand() * 4) }, () => gen(depth + 1));
      const o = {};
      for (let i = 0, n = Math.floor(rand() * 4); i < n; i++) o['k' + i] = gen(depth + 1);
      return o;
    };
    for (let i = 0; i < 2000; i++) {
      const v = gen(0);
      let jsonSame;
      try {
        assert.deepStrictEqual(JSON.parse(JSON.stringify(v)), v);
        jsonSame = true;
      } catch {
        jsonSame = false;
      }
      assert.equal(isJsonExact(v), jsonSame, JSON.stringify(v));
    }
  });
});
