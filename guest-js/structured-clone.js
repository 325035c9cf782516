// The `structured-clone` codec: a compact binary form of what the HTML
// structured clone algorithm carries (StructuredSerializeWithTransfer /
// StructuredDeserializeWithTransfer), for messages between JavaScript workers.
// Plain ES2023, no dependencies, no Node or DOM APIs.
//
// FORMAT (version 1)
//
//   message  = 0x01 (version byte), one value, and nothing after it.
//   varint   = unsigned LEB128, at most 8 bytes, value <= 2^53 - 1.
//   str      = varint h, then the text; h & 3 is the kind, h >>> 2 is n:
//                kind 0: n bytes of UTF-8 (well-formed strings);
//                kind 1: n UTF-16 code units, 2 bytes each, little-endian
//                        (used for strings with lone surrogates, so every
//                        JavaScript string round-trips exactly);
//                kind 2: only for a property key: the n-th distinct key string
//                        of this message (keys written with kind 0 or 1 are
//                        numbered 0, 1, 2, ... in order of appearance);
//                kind 3: invalid.
//   bigint   = varint h: h & 1 is the sign (1 = negative), h >>> 1 is n;
//              then n bytes of the magnitude, big-endian (0n: n = 0).
//   f64      = 8 bytes, IEEE 754 double, little-endian.
//
//   Tags (one byte, then the payload). Those marked * are objects: each one
//   takes the next memo id (0, 1, 2, ...) when its tag is read, before its
//   contents, so that REF can point back to it (shared and cyclic references).
//
//   0x00  undefined
//   0x01  null
//   0x02  false
//   0x03  true
//   0x04  int        varint zigzag(n), n a 32-bit signed integer (not -0)
//   0x05  number     f64
//   0x06  bigint     bigint
//   0x07  string     str (kind 0 or 1)
//   0x08  REF        varint memo id of an object already read
//   0x09 *object     varint n, then n times (str key, value)
//   0x0A *array      varint length, then length values (no holes, no other properties)
//   0x0B *array      (sparse, or with other properties) varint length, varint n,
//                    then n times (key, value); a key is an int (an index) or a string
//   0x0C *Map        varint n, then n times (key value, value)
//   0x0D *Set        varint n, then n values
//   0x0E *Date       f64 time value (NaN: an invalid date)
//   0x0F *RegExp     str source, str flags
//   0x10 *Boolean    one byte, 0 or 1
//   0x11 *Number     f64
//   0x12 *BigInt     bigint
//   0x13 *String     str
//   0x14 *ArrayBuffer            varint byteLength, the bytes
//   0x15 *ArrayBuffer, resizable varint byteLength, varint maxByteLength, the bytes
//   0x16 *view       one byte kind, value (the buffer: 0x14, 0x15, 0x18 or a REF to
//                    one), varint byteOffset, varint byteLength. Kinds: 0 Int8Array,
//                    1 Uint8Array, 2 Uint8ClampedArray, 3 Int16Array, 4 Uint16Array,
//                    5 Int32Array, 6 Uint32Array, 7 Float32Array, 8 Float64Array,
//                    9 BigInt64Array, 10 BigUint64Array, 11 DataView, 12 Float16Array
//   0x17 *Error      one byte name (0 Error, 1 EvalError, 2 RangeError,
//                    3 ReferenceError, 4 SyntaxError, 5 TypeError, 6 URIError),
//                    one byte flags (1 message, 2 stack, 4 cause; other bits 0),
//                    then [str message] [str stack] [value cause], those flagged
//   0x18  transferred ArrayBuffer  varint index into the transferred buffers
//   0x19  port                     varint index into the transferred ports
//
// Transferred buffers and ports take no memo id: every occurrence is a 0x18 or
// 0x19 with the same index. A view's id comes before its buffer's.
//
// SEMANTICS, where JavaScript cannot see what the HTML algorithm sees:
// - Types are recognised by prototype, instanceof and brand checks, not by
//   internal slots. An object of no known type is cloned as a plain object (own
//   enumerable string keys) if Object.prototype.toString calls it
//   "[object Object]", as for class instances; any other tag (WeakMap, Promise,
//   WeakRef, iterators, platform objects...) is a DataCloneError, so is a class
//   instance with a Symbol.toStringTag of its own.
// - The keys of an object or array are taken once (Object.keys) and each is
//   read with [[Get]]; a key that a getter deletes meanwhile is written as
//   undefined rather than skipped. Proxies are read through, not refused.
// - Errors keep name (one of the seven, else "Error"), an own data "message",
//   a string "stack" and an own data "cause" (as V8 does); nothing else.
// - RegExp keeps source and flags; lastIndex is 0. A length-tracking view is
//   received as a view of fixed length. SharedArrayBuffer is not cloneable.

const VERSION = 0x01;

const T_UNDEFINED = 0x00;
const T_NULL = 0x01;
const T_FALSE = 0x02;
const T_TRUE = 0x03;
const T_INT = 0x04;
const T_NUMBER = 0x05;
const T_BIGINT = 0x06;
const T_STRING = 0x07;
const T_REF = 0x08;
const T_OBJECT = 0x09;
const T_ARRAY = 0x0a;
const T_SPARSE_ARRAY = 0x0b;
const T_MAP = 0x0c;
const T_SET = 0x0d;
const T_DATE = 0x0e;
const T_REGEXP = 0x0f;
const T_BOOLEAN_OBJECT = 0x10;
const T_NUMBER_OBJECT = 0x11;
const T_BIGINT_OBJECT = 0x12;
const T_STRING_OBJECT = 0x13;
const T_ARRAY_BUFFER = 0x14;
const T_RESIZABLE_ARRAY_BUFFER = 0x15;
const T_VIEW = 0x16;
const T_ERROR = 0x17;
const T_TRANSFERRED = 0x18;
const T_PORT = 0x19;

const ERROR_NAMES = ['Error', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError', 'TypeError', 'URIError'];
const ERROR_CTORS = [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError];

const VIEW_CTORS = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
  typeof Float16Array === 'function' ? Float16Array : undefined,
];
const VIEW_KIND = new Map();
for (let i = 0; i < VIEW_CTORS.length; i++) if (VIEW_CTORS[i] !== undefined && i !== 11) VIEW_KIND.set(VIEW_CTORS[i].name, i);
const KIND_DATAVIEW = 11;

/** Limit on a received resizable ArrayBuffer's maxByteLength (1 GiB). */
const MAX_RESIZABLE_BYTE_LENGTH = 0x40000000;

const ObjectProto = Object.prototype;
const ArrayProto = Array.prototype;
const getPrototypeOf = Object.getPrototypeOf;
const objectKeys = Object.keys;
const isArray = Array.isArray;
const isView = ArrayBuffer.isView;
const defineProperty = Object.defineProperty;
const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
const objectToString = ObjectProto.toString;
const fromCharCode = String.fromCharCode;
// The %TypedArray%.prototype[@@toStringTag] getter is a brand check: the
// typed array's constructor name, or undefined for anything else.
const typedArrayTag = getOwnPropertyDescriptor(getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag).get;
const dateGetTime = Date.prototype.getTime;
const booleanValueOf = Boolean.prototype.valueOf;
const numberValueOf = Number.prototype.valueOf;
const stringValueOf = String.prototype.valueOf;
const bigintValueOf = BigInt.prototype.valueOf;
const SAB = typeof SharedArrayBuffer === 'function' ? SharedArrayBuffer : undefined;
const HAS_DETACHED = 'detached' in ArrayBuffer.prototype;
const HAS_RESIZABLE = 'resizable' in ArrayBuffer.prototype;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const encoder = new TextEncoder();
let decoder;
try {
  decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
} catch {
  decoder = new TextDecoder('utf-8');
}
// Whether the decoder keeps a leading U+FEFF (ignoreBOM); if not, it is put back.
const KEEPS_BOM = decoder.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])) === '\uFEFFA';
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const isWellFormed = typeof String.prototype.isWellFormed === 'function'
  ? (s) => s.isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);

const HEX = [];
for (let i = 0; i < 256; i++) HEX.push((i < 16 ? '0' : '') + i.toString(16));

/** What browsers throw as a DOMException named "DataCloneError" (code 25). */
export class DataCloneError extends Error {
  get code() {
    return 25;
  }
}
defineProperty(DataCloneError.prototype, 'name', { value: 'DataCloneError', writable: true, configurable: true });

function describe(v) {
  if (typeof v === 'function') {
    let s;
    try {
      s = Function.prototype.toString.call(v);
    } catch {
      s = 'function';
    }
    return s.length > 100 ? s.slice(0, 97) + '...' : s;
  }
  if (typeof v === 'symbol') return v.toString();
  let name = 'Object';
  try {
    const c = v.constructor;
    if (typeof c === 'function' && typeof c.name === 'string' && c.name) name = c.name;
  } catch {
    // keep 'Object'
  }
  return `#<${name}>`;
}

function isDetached(ab) {
  if (ab.byteLength !== 0) return false;
  if (HAS_DETACHED) return ab.detached === true;
  try {
    new Uint8Array(ab);
    return false;
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------
// Serialization. The writer state lives in module variables (fast to reach);
// serialize saves and restores them, so a getter that serializes too is fine.

const SPARE_MAX = 1 << 16;
let spareBuf = new Uint8Array(1024);
let spareView = new DataView(spareBuf.buffer);

let buf = spareBuf;
let view = spareView;
let pos = 0;
let memo = null; // object -> memo id (>= 0), or -1 - 2i (transferred buffer i), or -2 - 2j (port j)
let nextId = 0;
let keyIds = null; // key string -> key number
let nextKeyId = 0;
let checkPort = null;

function grow(n) {
  let cap = buf.length * 2;
  while (cap < pos + n) cap *= 2;
  const nb = new Uint8Array(cap);
  nb.set(buf.subarray(0, pos));
  buf = nb;
  view = new DataView(nb.buffer);
}

function varintSize(n) {
  let s = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

// Needs 10 bytes of room (callers ensure it).
function putVarint(n) {
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = n > 0xffffffff ? Math.floor(n / 128) : n >>> 7;
  }
  buf[pos++] = n;
}

function writeVarint(n) {
  if (pos + 10 > buf.length) grow(10);
  putVarint(n);
}

function writeTagVarint(tag, n) {
  if (pos + 11 > buf.length) grow(11);
  buf[pos++] = tag;
  putVarint(n);
}

function writeF64(tag, x) {
  if (pos + 9 > buf.length) grow(9);
  buf[pos++] = tag;
  view.setFloat64(pos, x, true);
  pos += 8;
}

// str with kind 0 or 1.
function writeStr(s) {
  const len = s.length;
  if (len < 32) {
    if (pos + 33 > buf.length) grow(33);
    const p = pos + 1;
    let i = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) break;
      buf[p + i] = c;
    }
    if (i === len) {
      buf[pos] = len << 2;
      pos = p + len;
      return;
    }
  }
  if (isWellFormed(s)) {
    const max = len * 3;
    const hs = varintSize(max * 4);
    if (pos + hs + max > buf.length) grow(hs + max);
    const start = pos + hs;
    const written = encoder.encodeInto(s, buf.subarray(start, start + max)).written;
    const as = varintSize(written * 4);
    if (as < hs) buf.copyWithin(pos + as, start, start + written);
    putVarint(written * 4);
    pos += written;
  } else {
    if (pos + 10 + len * 2 > buf.length) grow(10 + len * 2);
    putVarint(len * 4 + 1);
    let p = pos;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      buf[p] = c & 0xff;
      buf[p + 1] = c >>> 8;
      p += 2;
    }
    pos = p;
  }
}

function writeKey(k) {
  const id = keyIds.get(k);
  if (id !== undefined) {
    writeVarint(id * 4 + 2);
  } else {
    keyIds.set(k, nextKeyId++);
    writeStr(k);
  }
}

function writeBigIntPayload(b) {
  const neg = b < 0n;
  if (neg) b = -b;
  let hex = b === 0n ? '' : b.toString(16);
  if (hex.length & 1) hex = '0' + hex;
  const n = hex.length >>> 1;
  writeVarint(n * 2 + (neg ? 1 : 0));
  if (pos + n > buf.length) grow(n);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    let h = hex.charCodeAt(j);
    let l = hex.charCodeAt(j + 1);
    h = h < 0x60 ? h - 0x30 : h - 0x57;
    l = l < 0x60 ? l - 0x30 : l - 0x57;
    buf[pos++] = (h << 4) | l;
  }
}

function writeValue(v) {
  switch (typeof v) {
    case 'string':
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T_STRING;
      writeStr(v);
      return;
    case 'number':
      if ((v | 0) === v && (v !== 0 || 1 / v > 0)) {
        writeTagVarint(T_INT, ((v << 1) ^ (v >> 31)) >>> 0);
      } else {
        writeF64(T_NUMBER, v);
      }
      return;
    case 'boolean':
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = v ? T_TRUE : T_FALSE;
      return;
    case 'undefined':
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T_UNDEFINED;
      return;
    case 'object':
      if (v === null) {
        if (pos + 1 > buf.length) grow(1);
        buf[pos++] = T_NULL;
        return;
      }
      writeObject(v);
      return;
    case 'bigint':
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T_BIGINT;
      writeBigIntPayload(v);
      return;
    default:
      // symbol, function, and anything else
      throw new DataCloneError(`${describe(v)} could not be cloned.`);
  }
}

function writeObject(v) {
  const m = memo.get(v);
  if (m !== undefined) {
    if (m >= 0) {
      writeTagVarint(T_REF, m);
    } else {
      const k = -1 - m;
      writeTagVarint(k & 1 ? T_PORT : T_TRANSFERRED, k >>> 1);
    }
    return;
  }
  if (checkPort !== null && checkPort(v)) {
    throw new DataCloneError('A MessagePort could not be cloned: a MessagePort must be in the transfer list.');
  }
  const proto = getPrototypeOf(v);
  if (proto === ObjectProto || proto === null) {
    if (!isArray(v)) return writePlainObject(v);
  }
  if (isArray(v)) return writeArray(v);
  if (v instanceof ArrayBuffer) return writeArrayBuffer(v);
  if (isView(v)) return writeView(v);
  if (v instanceof Map) {
    memo.set(v, nextId++);
    const flat = [];
    for (const e of v) flat.push(e[0], e[1]);
    const n = flat.length;
    writeTagVarint(T_MAP, n >>> 1);
    for (let i = 0; i < n; i++) writeValue(flat[i]);
    return;
  }
  if (v instanceof Set) {
    memo.set(v, nextId++);
    const items = [...v];
    const n = items.length;
    writeTagVarint(T_SET, n);
    for (let i = 0; i < n; i++) writeValue(items[i]);
    return;
  }
  if (v instanceof Date) {
    const t = dateGetTime.call(v);
    memo.set(v, nextId++);
    writeF64(T_DATE, t);
    return;
  }
  if (v instanceof RegExp) {
    const source = v.source;
    const flags = v.flags;
    memo.set(v, nextId++);
    if (pos + 1 > buf.length) grow(1);
    buf[pos++] = T_REGEXP;
    writeStr(source);
    writeStr(flags);
    return;
  }
  if (v instanceof Error) return writeError(v);
  if (v instanceof Boolean) {
    const b = booleanValueOf.call(v);
    memo.set(v, nextId++);
    if (pos + 2 > buf.length) grow(2);
    buf[pos++] = T_BOOLEAN_OBJECT;
    buf[pos++] = b ? 1 : 0;
    return;
  }
  if (v instanceof Number) {
    const x = numberValueOf.call(v);
    memo.set(v, nextId++);
    writeF64(T_NUMBER_OBJECT, x);
    return;
  }
  if (v instanceof String) {
    const s = stringValueOf.call(v);
    memo.set(v, nextId++);
    if (pos + 1 > buf.length) grow(1);
    buf[pos++] = T_STRING_OBJECT;
    writeStr(s);
    return;
  }
  if (v instanceof BigInt) {
    const b = bigintValueOf.call(v);
    memo.set(v, nextId++);
    if (pos + 1 > buf.length) grow(1);
    buf[pos++] = T_BIGINT_OBJECT;
    writeBigIntPayload(b);
    return;
  }
  // Anything else: an ordinary object (a class instance) is cloned as a plain
  // object; one with a built-in tag of its own (WeakMap, Promise, a platform
  // object...) is not cloneable.
  const tag = objectToString.call(v);
  if (tag === '[object Object]') return writePlainObject(v);
  if (tag === '[object Error]') return writeError(v);
  throw new DataCloneError(`${describe(v)} could not be cloned.`);
}

function writePlainObject(v) {
  memo.set(v, nextId++);
  const keys = objectKeys(v);
  const n = keys.length;
  writeTagVarint(T_OBJECT, n);
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    writeKey(k);
    writeValue(v[k]);
  }
}

function writeArray(v) {
  memo.set(v, nextId++);
  const len = v.length;
  const keys = objectKeys(v);
  const n = keys.length;
  if (n === len && (len === 0 || keys[len - 1] === '' + (len - 1))) {
    // Every index 0..len-1 and nothing else.
    writeTagVarint(T_ARRAY, len);
    for (let i = 0; i < len; i++) writeValue(v[i]);
    return;
  }
  writeTagVarint(T_SPARSE_ARRAY, len);
  writeVarint(n);
  for (let i = 0; i < n; i++) {
    const k = keys[i];
    const x = +k;
    if ((x | 0) === x && x >= 0 && '' + x === k) {
      writeTagVarint(T_INT, x * 2);
    } else {
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T_STRING;
      writeStr(k);
    }
    writeValue(v[k]);
  }
}

function writeArrayBuffer(ab) {
  if (SAB !== undefined && ab instanceof SAB) {
    throw new DataCloneError('A SharedArrayBuffer could not be cloned.');
  }
  if (isDetached(ab)) throw new DataCloneError('An ArrayBuffer is detached and could not be cloned.');
  const len = ab.byteLength;
  memo.set(ab, nextId++);
  if (HAS_RESIZABLE && ab.resizable === true) {
    writeTagVarint(T_RESIZABLE_ARRAY_BUFFER, len);
    writeVarint(ab.maxByteLength);
  } else {
    writeTagVarint(T_ARRAY_BUFFER, len);
  }
  if (len > 0) {
    if (pos + len > buf.length) grow(len);
    buf.set(new Uint8Array(ab, 0, len), pos);
    pos += len;
  }
}

function writeView(v) {
  const name = typedArrayTag.call(v);
  let kind;
  if (name === undefined) {
    kind = KIND_DATAVIEW;
  } else {
    kind = VIEW_KIND.get(name);
    if (kind === undefined) throw new DataCloneError(`${describe(v)} could not be cloned.`);
  }
  memo.set(v, nextId++);
  if (pos + 2 > buf.length) grow(2);
  buf[pos++] = T_VIEW;
  buf[pos++] = kind;
  const b = v.buffer;
  if (SAB !== undefined && b instanceof SAB) {
    throw new DataCloneError('A view on a SharedArrayBuffer could not be cloned.');
  }
  writeValue(b);
  writeVarint(v.byteOffset);
  writeVarint(v.byteLength);
}

function writeError(v) {
  const nameValue = v.name;
  let code = ERROR_NAMES.indexOf(nameValue);
  if (code < 0) code = 0;
  const md = getOwnPropertyDescriptor(v, 'message');
  const message = md !== undefined && 'value' in md ? String(md.value) : undefined;
  let stack;
  try {
    stack = v.stack;
  } catch {
    stack = undefined;
  }
  const cd = getOwnPropertyDescriptor(v, 'cause');
  const hasCause = cd !== undefined && 'value' in cd;
  memo.set(v, nextId++);
  const flags = (message !== undefined ? 1 : 0) | (typeof stack === 'string' ? 2 : 0) | (hasCause ? 4 : 0);
  if (pos + 3 > buf.length) grow(3);
  buf[pos++] = T_ERROR;
  buf[pos++] = code;
  buf[pos++] = flags;
  if (flags & 1) writeStr(message);
  if (flags & 2) writeStr(stack);
  if (flags & 4) writeValue(cd.value);
}

const noPorts = () => false;

/**
 * Serializes `value` (StructuredSerializeWithTransfer). ArrayBuffers in
 * `transfer` are written by reference, as their index in `transferred`; the
 * other entries are ports, written as their index in `ports`. Nothing is
 * detached here: the caller detaches the transferred buffers afterwards.
 *
 * `isPort(obj)` recognises ports: one met in `value` but not in `transfer` is
 * a DataCloneError. When `isPort` is given, a transfer entry that is neither
 * an ArrayBuffer nor a port is a DataCloneError too; with the default, every
 * object entry that is not an ArrayBuffer is taken as a port.
 *
 * @returns {{bytes: Uint8Array, transferred: ArrayBuffer[], ports: object[]}}
 */
export function serialize(value, transfer = [], isPort = noPorts) {
  const saved = [buf, view, pos, memo, nextId, keyIds, nextKeyId, checkPort];
  const reuse = spareBuf !== null;
  if (reuse) {
    buf = spareBuf;
    view = spareView;
    spareBuf = null;
    spareView = null;
  } else {
    buf = new Uint8Array(1024);
    view = new DataView(buf.buffer);
  }
  pos = 0;
  memo = new Map();
  nextId = 0;
  keyIds = new Map();
  nextKeyId = 0;
  checkPort = typeof isPort === 'function' && isPort !== noPorts ? isPort : null;
  try {
    const transferred = [];
    const ports = [];
    let i = 0;
    for (const t of transfer) {
      if (t === null || (typeof t !== 'object' && typeof t !== 'function')) {
        throw new TypeError(`Value at index ${i} of the transfer list is not an object.`);
      }
      if (t instanceof ArrayBuffer) {
        if (memo.has(t)) throw new DataCloneError(`ArrayBuffer at index ${i} is a duplicate of an earlier ArrayBuffer.`);
        if (isDetached(t)) throw new DataCloneError(`ArrayBuffer at index ${i} is already detached.`);
        memo.set(t, -1 - 2 * transferred.length);
        transferred.push(t);
      } else {
        if (memo.has(t)) throw new DataCloneError(`Message port at index ${i} is a duplicate of an earlier port.`);
        if (SAB !== undefined && t instanceof SAB) {
          throw new DataCloneError(`Value at index ${i} does not have a transferable type.`);
        }
        if (checkPort !== null && !checkPort(t)) {
          throw new DataCloneError(`Value at index ${i} does not have a transferable type.`);
        }
        memo.set(t, -2 - 2 * ports.length);
        ports.push(t);
      }
      i++;
    }
    buf[pos++] = VERSION;
    writeValue(value);
    for (let j = 0; j < transferred.length; j++) {
      if (isDetached(transferred[j])) throw new DataCloneError('An ArrayBuffer is detached and could not be cloned.');
    }
    return { bytes: buf.slice(0, pos), transferred, ports };
  } finally {
    if (buf.length <= SPARE_MAX && (reuse || spareBuf === null)) {
      spareBuf = buf;
      spareView = view;
    }
    [buf, view, pos, memo, nextId, keyIds, nextKeyId, checkPort] = saved;
  }
}

// ---------------------------------------------------------------------------
// Deserialization.

let D = null; // the bytes
let DV = null;
let P = 0;
let END = 0;
let MEMO = null;
let KEYS = null;
let BUFS = null;
let PORTS = null;

function malformed(what) {
  throw new DataCloneError(`Malformed structured-clone data: ${what}.`);
}

function truncated() {
  malformed(`truncated at byte ${P}`);
}

function readByte() {
  if (P >= END) truncated();
  return D[P++];
}

function readVarint() {
  if (P < END) {
    const b = D[P];
    if (b < 0x80) {
      P++;
      return b;
    }
  }
  let r = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (P >= END) truncated();
    const b = D[P++];
    r += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (r > MAX_SAFE) malformed('a varint out of range');
      return r;
    }
    mul *= 128;
  }
  malformed('a varint longer than 8 bytes');
}

function readF64() {
  if (P + 8 > END) truncated();
  const x = DV.getFloat64(P, true);
  P += 8;
  return x;
}

// The text of a str whose header h (kind 0 or 1) was read.
function readStrBody(h) {
  const kind = h % 4;
  const n = (h - kind) / 4;
  if (kind === 0) {
    if (n > END - P) truncated();
    if (n === 0) return '';
    const start = P;
    const end = P + n;
    if (n <= 32) {
      let i = start;
      while (i < end && D[i] < 0x80) i++;
      if (i === end) {
        P = end;
        return fromCharCode.apply(null, D.subarray(start, end));
      }
    }
    let s = decoder.decode(D.subarray(start, end));
    if (!KEEPS_BOM && D[start] === 0xef && D[start + 1] === 0xbb && D[start + 2] === 0xbf) s = '\uFEFF' + s;
    P = end;
    return s;
  }
  if (kind === 1) {
    if (n > (END - P) / 2) truncated();
    const bytes = D.slice(P, P + n * 2);
    P += n * 2;
    let units;
    if (LITTLE_ENDIAN) {
      units = new Uint16Array(bytes.buffer);
    } else {
      units = new Uint16Array(n);
      for (let i = 0; i < n; i++) units[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
    }
    if (n <= 4096) return fromCharCode.apply(null, units);
    let s = '';
    for (let i = 0; i < n; i += 4096) s += fromCharCode.apply(null, units.subarray(i, i + 4096));
    return s;
  }
  malformed('a string of an unknown kind');
}

function readStr() {
  const h = readVarint();
  if (h % 4 === 2) malformed('a key reference where a string was expected');
  return readStrBody(h);
}

function readKey() {
  const h = readVarint();
  if (h % 4 === 2) {
    const id = (h - 2) / 4;
    if (id >= KEYS.length) malformed('a key reference out of range');
    return KEYS[id];
  }
  const s = readStrBody(h);
  KEYS.push(s);
  return s;
}

function readBigIntPayload() {
  const h = readVarint();
  const neg = h % 2 === 1;
  const n = (h - (neg ? 1 : 0)) / 2;
  if (n > END - P) truncated();
  if (n === 0) return 0n;
  let hex = '0x';
  for (let i = 0; i < n; i++) hex += HEX[D[P++]];
  const b = BigInt(hex);
  return neg ? -b : b;
}

function setProperty(o, k, v) {
  if (k === '__proto__') {
    defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  } else {
    o[k] = v;
  }
}

function readValue() {
  if (P >= END) truncated();
  const tag = D[P++];
  switch (tag) {
    case T_UNDEFINED:
      return undefined;
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_INT: {
      const z = readVarint();
      if (z > 0xffffffff) malformed('an int out of range');
      return (z >>> 1) ^ -(z & 1);
    }
    case T_NUMBER:
      return readF64();
    case T_BIGINT:
      return readBigIntPayload();
    case T_STRING:
      return readStr();
    case T_REF: {
      const id = readVarint();
      const o = id < MEMO.length ? MEMO[id] : undefined;
      if (o === undefined) malformed('a reference to an object not yet read');
      return o;
    }
    case T_OBJECT: {
      const o = {};
      MEMO.push(o);
      const n = readVarint();
      if (n > END - P) truncated();
      for (let i = 0; i < n; i++) {
        const k = readKey();
        setProperty(o, k, readValue());
      }
      return o;
    }
    case T_ARRAY: {
      const a = [];
      MEMO.push(a);
      const n = readVarint();
      if (n > END - P) truncated();
      for (let i = 0; i < n; i++) a.push(readValue());
      return a;
    }
    case T_SPARSE_ARRAY: {
      const a = [];
      MEMO.push(a);
      const len = readVarint();
      if (len > 0xffffffff) malformed('an array length out of range');
      a.length = len;
      const n = readVarint();
      if (n > END - P) truncated();
      for (let i = 0; i < n; i++) {
        const k = readValue();
        if (typeof k === 'number') {
          if (k < 0) malformed('a negative array index');
          a[k] = readValue();
        } else if (typeof k === 'string') {
          if (k === 'length') malformed('an array property named length');
          setProperty(a, k, readValue());
        } else {
          malformed('an array key that is neither an index nor a string');
        }
      }
      return a;
    }
    case T_MAP: {
      const m = new Map();
      MEMO.push(m);
      const n = readVarint();
      if (n > END - P) truncated();
      for (let i = 0; i < n; i++) {
        const k = readValue();
        m.set(k, readValue());
      }
      return m;
    }
    case T_SET: {
      const s = new Set();
      MEMO.push(s);
      const n = readVarint();
      if (n > END - P) truncated();
      for (let i = 0; i < n; i++) s.add(readValue());
      return s;
    }
    case T_DATE: {
      const d = new Date(readF64());
      MEMO.push(d);
      return d;
    }
    case T_REGEXP: {
      const source = readStr();
      const flags = readStr();
      const r = new RegExp(source, flags);
      MEMO.push(r);
      return r;
    }
    case T_BOOLEAN_OBJECT: {
      const b = readByte();
      if (b > 1) malformed('a Boolean that is neither 0 nor 1');
      const o = Object(b === 1);
      MEMO.push(o);
      return o;
    }
    case T_NUMBER_OBJECT: {
      const o = Object(readF64());
      MEMO.push(o);
      return o;
    }
    case T_BIGINT_OBJECT: {
      const o = Object(readBigIntPayload());
      MEMO.push(o);
      return o;
    }
    case T_STRING_OBJECT: {
      const o = Object(readStr());
      MEMO.push(o);
      return o;
    }
    case T_ARRAY_BUFFER: {
      const n = readVarint();
      if (n > END - P) truncated();
      const ab = D.slice(P, P + n).buffer;
      P += n;
      MEMO.push(ab);
      return ab;
    }
    case T_RESIZABLE_ARRAY_BUFFER: {
      const n = readVarint();
      const max = readVarint();
      if (max < n || max > MAX_RESIZABLE_BYTE_LENGTH) malformed('a resizable ArrayBuffer with a bad maxByteLength');
      if (n > END - P) truncated();
      const ab = new ArrayBuffer(n, { maxByteLength: max });
      new Uint8Array(ab).set(D.subarray(P, P + n));
      P += n;
      MEMO.push(ab);
      return ab;
    }
    case T_VIEW: {
      const kind = readByte();
      const C = VIEW_CTORS[kind];
      if (C === undefined) malformed(`an unknown view kind ${kind}`);
      const id = MEMO.length;
      MEMO.push(undefined);
      const b = readValue();
      if (!(b instanceof ArrayBuffer)) malformed("a view's buffer that is not an ArrayBuffer");
      const offset = readVarint();
      const length = readVarint();
      if (offset + length > b.byteLength) malformed('a view out of its buffer');
      let v;
      if (C === DataView) {
        v = new DataView(b, offset, length);
      } else {
        const size = C.BYTES_PER_ELEMENT;
        if (length % size !== 0 || offset % size !== 0) malformed('a misaligned typed array');
        v = new C(b, offset, length / size);
      }
      MEMO[id] = v;
      return v;
    }
    case T_ERROR: {
      const code = readByte();
      const flags = readByte();
      const C = ERROR_CTORS[code];
      if (C === undefined) malformed(`an unknown error name ${code}`);
      if (flags > 7) malformed('unknown error flags');
      const message = flags & 1 ? readStr() : undefined;
      const e = message !== undefined ? new C(message) : new C();
      MEMO.push(e);
      if (flags & 2) defineProperty(e, 'stack', { value: readStr(), writable: true, enumerable: false, configurable: true });
      if (flags & 4) defineProperty(e, 'cause', { value: readValue(), writable: true, enumerable: false, configurable: true });
      return e;
    }
    case T_TRANSFERRED: {
      const i = readVarint();
      if (i >= BUFS.length) malformed(`a transferred ArrayBuffer ${i} that was not received`);
      const ab = BUFS[i];
      if (!(ab instanceof ArrayBuffer)) malformed(`a transferred ArrayBuffer ${i} that is not an ArrayBuffer`);
      return ab;
    }
    case T_PORT: {
      const i = readVarint();
      if (i >= PORTS.length) malformed(`a port ${i} that was not received`);
      return PORTS[i];
    }
    default:
      P--;
      return malformed(`an unknown tag 0x${tag.toString(16)} at byte ${P}`);
  }
}

/**
 * Deserializes bytes made by `serialize` (StructuredDeserializeWithTransfer):
 * `buffers` are the transferred ArrayBuffers and `ports` the transferred ports,
 * in the order `serialize` listed them. Malformed input is a DataCloneError.
 */
export function deserialize(bytes, buffers = [], ports = []) {
  let u8;
  if (bytes instanceof Uint8Array) u8 = bytes;
  else if (bytes instanceof ArrayBuffer) u8 = new Uint8Array(bytes);
  else if (isView(bytes)) u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  else throw new DataCloneError('Structured-clone data must be bytes.');
  const saved = [D, DV, P, END, MEMO, KEYS, BUFS, PORTS];
  try {
    D = u8;
    DV = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    P = 0;
    END = u8.length;
    MEMO = [];
    KEYS = [];
    BUFS = buffers;
    PORTS = ports;
    if (END === 0) malformed('no bytes');
    if (D[0] !== VERSION) malformed(`unknown version ${D[0]}`);
    P = 1;
    const v = readValue();
    if (P !== END) malformed(`${END - P} bytes after the value`);
    return v;
  } catch (e) {
    if (e instanceof DataCloneError) throw e;
    throw new DataCloneError(`Malformed structured-clone data: ${e && e.message}`, { cause: e });
  } finally {
    [D, DV, P, END, MEMO, KEYS, BUFS, PORTS] = saved;
  }
}

// ---------------------------------------------------------------------------
// isJsonExact: whether JSON.parse(JSON.stringify(value)) gives the value back.
// The fast walk keeps no set of ancestors; past DEPTH levels (a cycle, or a
// deep value) the walk starts again keeping one.

const DEPTH = 200;
const TOO_DEEP = {};

function jsonLeaf(v) {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return v === v && v !== Infinity && v !== -Infinity && (v !== 0 || 1 / v > 0);
    default:
      return false;
  }
}

function jsonFast(v, depth) {
  if (typeof v !== 'object') return jsonLeaf(v);
  if (v === null) return true;
  if (depth > DEPTH) throw TOO_DEEP;
  const proto = getPrototypeOf(v);
  if (proto === ArrayProto) {
    if (!isArray(v)) return false;
    const len = v.length;
    for (let i = 0; i < len; i++) {
      const x = v[i];
      if (typeof x === 'object' ? !jsonFast(x, depth + 1) : !jsonLeaf(x)) return false;
    }
    return objectKeys(v).length === len;
  }
  if ((proto !== ObjectProto && proto !== null) || isArray(v)) return false;
  const keys = objectKeys(v);
  for (let i = 0; i < keys.length; i++) {
    const x = v[keys[i]];
    if (typeof x === 'object' ? !jsonFast(x, depth + 1) : !jsonLeaf(x)) return false;
  }
  return true;
}

function jsonSlow(v, ancestors) {
  if (typeof v !== 'object') return jsonLeaf(v);
  if (v === null) return true;
  if (ancestors.has(v)) return false;
  const proto = getPrototypeOf(v);
  let keys;
  if (proto === ArrayProto) {
    if (!isArray(v)) return false;
    keys = objectKeys(v);
    if (keys.length !== v.length) return false;
  } else if ((proto === ObjectProto || proto === null) && !isArray(v)) {
    keys = objectKeys(v);
  } else {
    return false;
  }
  ancestors.add(v);
  const array = proto === ArrayProto;
  for (let i = 0; i < keys.length; i++) {
    const x = array ? v[i] : v[keys[i]];
    if (!jsonSlow(x, ancestors)) return false;
  }
  ancestors.delete(v);
  return true;
}

/**
 * True iff JSON.parse(JSON.stringify(value)) gives back a deep-equal value of
 * the same shape: plain objects (prototype Object.prototype or null), dense
 * arrays without other properties, strings, booleans, null, finite numbers
 * other than -0; no undefined, no cycles. Symbol-keyed and non-enumerable
 * properties are not looked at (structured clone drops them too).
 */
export function isJsonExact(value) {
  try {
    return jsonFast(value, 0);
  } catch (e) {
    if (e !== TOO_DEEP) return false;
  }
  try {
    return jsonSlow(value, new Set());
  } catch {
    return false;
  }
}
