// The JavaScript worker global scope of wasm-workers: what a worker script written for
// browsers finds in `self` (HTML, chapter 10), built on the WIT world `worker`
// (`wit/worker.wit`).
//
// `wasm-workers build-js` bundles this module with the worker scripts it is given and
// compiles the bundle into one component with componentize-js. Each script is kept as
// text and evaluated as a classic script when its worker starts (`on-start`), so that its
// top-level declarations are globals, as in a browser; a worker runs the script named like
// the file it was started from (`primes.wasm` runs `primes.js`), or the bundle's only script.
//
// Where this scope differs from a browser's, and why:
// - an exception that no `self.onerror` handles ends the worker (the host's error event
//   means a worker has ended); the parent's `onerror` still gets it first, with the message,
//   the script's file name, line and column;
// - `postMessage` to a receiver whose queue is full drops the message and the host counts
//   it dropped, as the Rust SDK's `post` does (browsers queue without bound);
// - transferred `ArrayBuffer`s are copied once into the host and detached in the sender;
//   they cross between workers without further copies;
// - a message is sent as JSON when JSON carries it exactly (so that workers in any
//   language read it), and in the `structured-clone` codec otherwise;
// - buffers transferred with a JSON message (from a worker in another language) come as
//   `event.buffers`, an array of `ArrayBuffer`s;
// - `new Worker('x.js')` starts the component `x.wasm` beside this one (build both into one
//   bundle and they are one file, compiled once); any other location is a component's;
// - a script is evaluated by indirect `eval`: its top-level `let`/`const`/`class` stay its own
//   (its `var`s and functions are globals, and the handlers a strict script declares are made
//   the global's); a port's `close` event waits, like its messages, for `start()`; the promise
//   jobs of one message's handler run after the other messages delivered with it.

import * as host from 'wasm-workers:worker/scope@0.1.0';
import { Buffer as HostBuffer } from 'wasm-workers:worker/types@0.1.0';
import { serialize, deserialize, isJsonExact, DataCloneError } from './structured-clone.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

// ---------------------------------------------------------------------------------------
// Events

/** Whether `stopImmediatePropagation` was called; sets an event's target (`Event`'s own). */
let stoppedImmediately;
let dispatching;

/** An event (DOM `Event`), dispatched by the `EventTarget`s of this scope. */
class Event {
  #type;
  #bubbles;
  #cancelable;
  #canceled = false;
  #target = null;
  #currentTarget = null;
  #timeStamp = Date.now();
  #stopped = false;
  #stoppedImmediately = false;

  constructor(type, init = {}) {
    if (arguments.length === 0) throw new TypeError("Event constructor: At least 1 argument required");
    this.#type = String(type);
    this.#bubbles = Boolean(init?.bubbles);
    this.#cancelable = Boolean(init?.cancelable);
  }
  get type() { return this.#type; }
  get bubbles() { return this.#bubbles; }
  get cancelable() { return this.#cancelable; }
  get defaultPrevented() { return this.#canceled; }
  get target() { return this.#target; }
  get srcElement() { return this.#target; }
  get currentTarget() { return this.#currentTarget; }
  get timeStamp() { return this.#timeStamp; }
  get isTrusted() { return false; }
  get eventPhase() { return this.#currentTarget === null ? 0 : 2; }
  composedPath() { return this.#target === null ? [] : [this.#target]; }
  preventDefault() { if (this.#cancelable) this.#canceled = true; }
  get returnValue() { return !this.#canceled; }
  set returnValue(value) { if (!value) this.preventDefault(); }
  stopPropagation() { this.#stopped = true; }
  stopImmediatePropagation() { this.#stopped = true; this.#stoppedImmediately = true; }
  get cancelBubble() { return this.#stopped; }
  set cancelBubble(value) { if (value) this.#stopped = true; }
  get [Symbol.toStringTag]() { return 'Event'; }
  static {
    // What the dispatch of this module reads and sets, out of scripts' reach.
    stoppedImmediately = (event) => event.#stoppedImmediately;
    dispatching = (event, target, current) => {
      event.#target = target;
      event.#currentTarget = current;
    };
  }
}

/** Marks the init of a `MessageEvent` made for a message received, not by a script. */
const RECEIVED = Symbol('received');

/** A message (HTML `MessageEvent`): `data`, the transferred `ports`, and where it came from. */
class MessageEvent extends Event {
  #data;
  #ports;
  #origin;
  #lastEventId;
  #source;
  constructor(type, init = {}) {
    super(type, init);
    // A message's own data is kept as it is (`undefined` too); a script's init defaults to null.
    this.#data = init?.[RECEIVED] === true || init?.data !== undefined ? init.data : null;
    this.#ports = Object.freeze(Array.from(init?.ports ?? []));
    this.#origin = String(init?.origin ?? '');
    this.#lastEventId = String(init?.lastEventId ?? '');
    this.#source = init?.source ?? null;
    if (init?.buffers !== undefined) this.buffers = init.buffers;
  }
  get [Symbol.toStringTag]() { return 'MessageEvent'; }
  get data() { return this.#data; }
  get ports() { return this.#ports; }
  get origin() { return this.#origin; }
  get lastEventId() { return this.#lastEventId; }
  get source() { return this.#source; }
}

/** A runtime script error (HTML `ErrorEvent`). */
class ErrorEvent extends Event {
  #message;
  #filename;
  #lineno;
  #colno;
  #error;
  constructor(type, init = {}) {
    super(type, init);
    this.#message = String(init?.message ?? '');
    this.#filename = String(init?.filename ?? '');
    this.#lineno = Number(init?.lineno ?? 0) >>> 0;
    this.#colno = Number(init?.colno ?? 0) >>> 0;
    this.#error = init?.error;
  }
  get [Symbol.toStringTag]() { return 'ErrorEvent'; }
  get message() { return this.#message; }
  get filename() { return this.#filename; }
  get lineno() { return this.#lineno; }
  get colno() { return this.#colno; }
  get error() { return this.#error; }
}

/**
 * An event target (DOM `EventTarget`), with the event handler attributes (`onmessage`, …)
 * of HTML: a handler takes its place among the listeners when it is first set.
 *
 * An exception thrown by a listener is reported (see `reportException`) and the other
 * listeners still run, as in a browser.
 */
class EventTarget {
  addEventListener(type, callback, options) {
    if (callback === null || callback === undefined) return;
    type = String(type);
    const once = typeof options === 'object' && options !== null && Boolean(options.once);
    const capture = typeof options === 'boolean' ? options : Boolean(options?.capture);
    const list = listenersOf(this, type);
    if (list.some((l) => l.callback === callback && l.capture === capture && !l.removed)) return;
    const signal = options?.signal;
    if (signal?.aborted) return;
    list.push({ callback, capture, once, removed: false, handler: false });
    if (signal && typeof signal.addEventListener === 'function') {
      signal.addEventListener('abort', () => this.removeEventListener(type, callback, { capture }));
    }
  }

  removeEventListener(type, callback, options) {
    const capture = typeof options === 'boolean' ? options : Boolean(options?.capture);
    const list = listeners.get(this)?.get(String(type));
    if (!list) return;
    const i = list.findIndex((l) => l.callback === callback && l.capture === capture && !l.removed);
    if (i >= 0) {
      list[i].removed = true;
      list.splice(i, 1);
    }
  }

  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError("EventTarget.dispatchEvent: Argument 1 is not an Event");
    return dispatch(this, event);
  }

  get [Symbol.toStringTag]() { return 'EventTarget'; }
}

/** Every target's listeners, by event type; kept here, out of scripts' reach. */
const listeners = new WeakMap();
/** Every target's event handlers (`on<type>`), by event type: `{ value, listener }`. */
const handlerSlots = new WeakMap();

function listenersOf(target, type) {
  let byType = listeners.get(target);
  if (!byType) listeners.set(target, (byType = new Map()));
  let list = byType.get(type);
  if (!list) byType.set(type, (list = []));
  return list;
}

function getHandler(target, type) {
  return handlerSlots.get(target)?.get(type)?.value ?? null;
}

/** Sets `target`'s handler of `type`: it takes its place among the listeners when first set. */
function setHandler(target, type, value) {
  let byType = handlerSlots.get(target);
  if (!byType) handlerSlots.set(target, (byType = new Map()));
  const slot = byType.get(type);
  if (typeof value !== 'function' && (typeof value !== 'object' || value === null)) value = null;
  if (value === null) {
    if (slot) {
      slot.entry.removed = true;
      const list = listenersOf(target, type);
      list.splice(list.indexOf(slot.entry), 1);
      byType.delete(type);
    }
    return;
  }
  if (slot) {
    slot.value = value;
    return;
  }
  const entry = {
    callback: (event) => {
      const handler = byType.get(type)?.value;
      return typeof handler === 'function' ? handler.call(target, event) : undefined;
    },
    capture: false,
    once: false,
    removed: false,
    handler: true,
  };
  byType.set(type, { value, entry });
  listenersOf(target, type).push(entry);
}

/** Defines `on<type>` on `proto` for each of `types`. */
function eventHandlers(proto, types, onSet) {
  for (const type of types) {
    Object.defineProperty(proto, `on${type}`, {
      get() { return getHandler(this, type); },
      set(value) {
        setHandler(this, type, value);
        onSet?.call(this, type, value);
      },
      enumerable: true,
      configurable: true,
    });
  }
}

/** Calls `target`'s listeners for `event`; returns false if it was canceled. */
function dispatch(target, event) {
  dispatching(event, target, target);
  // A handler declared as a global function (`function onmessage(e) {}` at the top level of
  // the script) replaces the global's accessor with a plain property: it runs first.
  if (target === globalThis) {
    const declared = Object.getOwnPropertyDescriptor(globalThis, `on${event.type}`);
    if (declared && 'value' in declared && typeof declared.value === 'function') {
      invoke(target, declared.value, event, true);
    }
  }
  const list = listeners.get(target)?.get(event.type);
  if (list) {
    for (const listener of list.slice()) {
      if (listener.removed || stoppedImmediately(event)) continue;
      if (listener.once) target.removeEventListener(event.type, listener.callback, { capture: listener.capture });
      invoke(target, listener.callback, event, listener.handler);
    }
  }
  dispatching(event, target, null);
  return !event.defaultPrevented;
}

function invoke(target, callback, event, isHandler) {
  try {
    const result = typeof callback === 'function' ? callback.call(target, event) : callback.handleEvent(event);
    // A handler that returns false cancels the event (HTML's event handler processing).
    if (isHandler && result === false && event.cancelable) event.preventDefault();
  } catch (error) {
    if (error instanceof Fatal) throw error;
    reportException(error);
  }
}

// ---------------------------------------------------------------------------------------
// Errors

/** Unwinds to the host after an error no one handled: the worker ends with it. */
class Fatal {
  constructor(error) {
    this.error = error;
  }
}

/** Where in the running script `error` was raised: `[line, column]`, or `[0, 0]`. */
function positionOf(error) {
  if (error instanceof SyntaxError && typeof error.lineNumber === 'number' && !String(error.stack).includes('> eval:')) {
    return [error.lineNumber, (error.columnNumber ?? 0)];
  }
  const stack = typeof error?.stack === 'string' ? error.stack : '';
  const frame = /> eval:(\d+):(\d+)/.exec(stack);
  if (frame) return [Number(frame[1]), Number(frame[2])];
  if (error instanceof SyntaxError && typeof error.lineNumber === 'number') {
    return [error.lineNumber, error.columnNumber ?? 0];
  }
  return [0, 0];
}

function describe(error) {
  try {
    return `Uncaught ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
  } catch {
    return 'Uncaught exception';
  }
}

let reporting = false;
/** An error no one handled, once reported: the worker ends with it when its task returns,
 * whatever a script's own `catch` did with the unwinding. */
let fatal = null;

/**
 * HTML's "report an exception" in a worker: fire `error` at the global scope (`self.onerror`
 * gets `message, filename, lineno, colno, error` and handles it by returning true, a
 * listener by calling `preventDefault`); an error it does not handle ends the worker, and
 * its parent gets an error event with the message, line and column.
 */
function reportException(error, where) {
  const message = where?.message ?? describe(error);
  const [lineno, colno] = where === undefined ? positionOf(error) : [where.lineno, where.colno];
  const filename = where?.filename ?? script?.filename ?? '';
  if (!reporting && fatal === null) {
    reporting = true;
    try {
      const event = new ErrorEvent('error', { message, filename, lineno, colno, error, cancelable: true });
      dispatching(event, globalThis, globalThis);
      const declared = Object.getOwnPropertyDescriptor(globalThis, 'onerror');
      const onerror = declared && 'value' in declared ? declared.value : getHandler(globalThis, 'error');
      if (typeof onerror === 'function' && onerror.call(globalThis, message, filename, lineno, colno, error) === true) {
        event.preventDefault();
      }
      // The other listeners, as a dispatch runs them (the handler's own entry has run above).
      const list = listeners.get(globalThis)?.get('error') ?? [];
      for (const listener of list.slice()) {
        if (listener.removed || listener.handler || stoppedImmediately(event)) continue;
        if (listener.once) globalThis.removeEventListener('error', listener.callback);
        try {
          const callback = listener.callback;
          typeof callback === 'function' ? callback.call(globalThis, event) : callback.handleEvent(event);
        } catch {
          // An error listener that throws: the first error stands.
        }
      }
      if (event.defaultPrevented) return;
    } catch {
      // An error handler that throws: the first error stands.
    } finally {
      reporting = false;
    }
  }
  if (fatal === null) {
    fatal = error instanceof Error ? error : new Error(message);
    host.reportError(message, lineno, colno);
  }
  throw new Fatal(fatal);
}

/** Runs `f` as a task: what it throws is reported; an error no one handles ends the worker. */
function task(f) {
  try {
    f();
  } catch (error) {
    if (!(error instanceof Fatal)) {
      try {
        reportException(error);
      } catch {
        // Fatal: thrown below.
      }
    }
  }
  // Trapping ends the worker with the error reported.
  if (fatal !== null) throw fatal;
}

function dataCloneError(message) {
  return typeof DOMException === 'function' ? new DOMException(message, 'DataCloneError') : new DataCloneError(message);
}

// ---------------------------------------------------------------------------------------
// Messages

/** The transfer list of `postMessage(message, transfer)` or `(message, { transfer })`. */
function transferList(options) {
  if (options === undefined || options === null) return [];
  if (typeof options === 'object' && !Array.isArray(options) && typeof options[Symbol.iterator] !== 'function') {
    return options.transfer === undefined ? [] : Array.from(options.transfer);
  }
  return Array.from(options);
}

/**
 * Serializes `message` with `transfer` for the host (StructuredSerializeWithTransfer):
 * JSON when JSON carries it exactly, the structured-clone codec otherwise. Throws
 * `DataCloneError` (and sends nothing, detaches nothing) for what cannot be cloned or
 * transferred. `sender` is the port posting it, which may not transfer itself.
 */
function encodeMessage(message, options, sender) {
  const transfer = transferList(options);
  const seen = new Set();
  for (const object of transfer) {
    if (seen.has(object)) throw dataCloneError('An object is listed twice in the transfer list');
    seen.add(object);
    if (object instanceof ArrayBuffer) {
      if (object.detached) throw dataCloneError('An ArrayBuffer in the transfer list is detached');
    } else if (object instanceof MessagePort) {
      if (object === sender) throw dataCloneError('A port cannot transfer itself');
      if (isDetached(object)) throw dataCloneError('A MessagePort in the transfer list is detached');
    } else {
      throw dataCloneError(`${describeValue(object)} is not transferable`);
    }
  }
  let codec;
  let data;
  let ports;
  let buffers;
  if (isJsonExact(message)) {
    codec = 'json';
    data = encoder.encode(JSON.stringify(message));
    ports = transfer.filter((o) => o instanceof MessagePort);
    buffers = transfer.filter((o) => o instanceof ArrayBuffer);
  } else {
    let cloned;
    try {
      cloned = serialize(message, transfer, (o) => o instanceof MessagePort);
    } catch (error) {
      if (error instanceof DataCloneError) throw dataCloneError(error.message);
      throw error;
    }
    codec = 'structured-clone';
    data = cloned.bytes;
    ports = cloned.ports;
    buffers = cloned.transferred;
  }
  const wit = [];
  for (const port of ports) wit.push({ tag: 'port', val: takePort(port) });
  for (const buffer of buffers) {
    wit.push({ tag: 'buffer', val: HostBuffer.fromBytes(new Uint8Array(buffer)) });
    buffer.transfer(0);
  }
  return { codec, data, transfer: wit };
}

function describeValue(value) {
  if (typeof value === 'function') return `${value.name ? `function ${value.name}` : 'A function'}`;
  if (typeof value === 'symbol') return String(value);
  return Object.prototype.toString.call(value);
}

/** A host buffer's bytes as a new `ArrayBuffer` (the host's buffer is let go). */
function arrayBufferOf(buffer) {
  const bytes = buffer.read(0n, buffer.len());
  buffer[Symbol.dispose]?.();
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
}

/** The event a received message becomes: `message`, or `messageerror` if it cannot be read. */
function messageEvent(codec, bytes, transfer, error) {
  const ports = [];
  const buffers = [];
  for (const object of transfer) {
    if (object.tag === 'port') ports.push(adoptPort(object.val));
    else buffers.push(arrayBufferOf(object.val));
  }
  if (error !== undefined) return new MessageEvent('messageerror', { ports });
  try {
    switch (codec) {
      case 'json': {
        const data = JSON.parse(decoder.decode(bytes));
        return new MessageEvent('message', buffers.length > 0 ? { data, ports, buffers } : { data, ports });
      }
      case 'structured-clone':
        return new MessageEvent('message', { data: deserialize(bytes, buffers, ports), ports, [RECEIVED]: true });
      case 'raw':
        return new MessageEvent('message', buffers.length > 0 ? { data: bytes.slice().buffer, ports, buffers } : { data: bytes.slice().buffer, ports });
      default:
        // postcard (Rust to Rust), or a codec this scope does not know.
        return new MessageEvent('messageerror', { ports });
    }
  } catch {
    return new MessageEvent('messageerror', { ports });
  }
}

// ---------------------------------------------------------------------------------------
// Ports

const ports = new Map();

/** A port for a host's port (or a detached one, for `null`); its host port moved out; whether
 * it is detached; closed for good. */
let adoptPort;
let takePort;
let isDetached;
let disentangle;

/** One end of a message channel (HTML `MessagePort`). */
class MessagePort extends EventTarget {
  #handle = null;
  #id = -1;

  constructor() {
    super();
    if (!constructing) throw new TypeError('Illegal constructor');
  }

  static {
    adoptPort = (handle) => {
      constructing = true;
      const port = new MessagePort();
      constructing = false;
      if (handle !== null) {
        port.#handle = handle;
        port.#id = handle.id();
        ports.set(port.#id, port);
      }
      return port;
    };
    takePort = (port) => {
      const handle = port.#handle;
      port.#handle = null;
      ports.delete(port.#id);
      return handle;
    };
    isDetached = (port) => port.#handle === null;
    // The entangled port closed: this one is done too.
    disentangle = (port) => {
      ports.delete(port.#id);
      dispose(port.#handle);
      port.#handle = null;
    };
  }

  postMessage(message, transfer) {
    send(this.#handle, encodeMessage(message, transfer, this));
  }

  start() {
    this.#handle?.start();
  }

  close() {
    if (this.#handle === null) return;
    this.#handle.close();
    disentangle(this);
  }

  get [Symbol.toStringTag]() { return 'MessagePort'; }
}

const DISPOSE = Symbol.dispose ?? Symbol.for('dispose');

/** Lets go of a host resource (a port, a buffer, a worker handle) now, not at a collection. */
function dispose(resource) {
  try {
    resource?.[DISPOSE]?.();
  } catch {
    // Already gone.
  }
}

/**
 * Hands an encoded message to `target` (a port's or a child's host handle, or the scope's
 * `host` for the parent). One it refuses (a full queue, too large) is dropped, and counted by
 * the host, as the Rust SDK's `post` drops it. With no target (a detached port, an ended
 * child), what it would have transferred is let go.
 */
function send(target, encoded) {
  if (target === null) return discardTransfer(encoded.transfer);
  try {
    target.postMessage(encoded);
  } catch (error) {
    if (error?.payload === undefined) throw error;
  }
}

/** Lets go of what a message would have transferred. */
function discardTransfer(transfer) {
  for (const object of transfer) dispose(object.val);
}
let constructing = false;
// Setting `onmessage` starts the port (HTML: the port message queue is enabled).
eventHandlers(MessagePort.prototype, ['message', 'messageerror', 'close'], function (type, value) {
  if (type === 'message' && value !== null) this.start();
});

/** A channel of two entangled ports (HTML `MessageChannel`). */
class MessageChannel {
  #port1;
  #port2;
  constructor() {
    const [a, b] = host.messageChannel();
    this.#port1 = adoptPort(a);
    this.#port2 = adoptPort(b);
  }
  get [Symbol.toStringTag]() { return 'MessageChannel'; }
  get port1() { return this.#port1; }
  get port2() { return this.#port2; }
}

// ---------------------------------------------------------------------------------------
// Workers

const children = new Map();

/** The component a script's URL names: `x.js` is `x.wasm`, built from it. */
function componentLocation(url) {
  let location = String(url);
  if (location.startsWith('./')) location = location.slice(2);
  return location.replace(/\.m?js$/, '.wasm');
}

/** The URL a `Worker` was made with; the end of its child. */
let urlOf;
let ended;

/** A dedicated worker this worker started (HTML `Worker`). */
class Worker extends EventTarget {
  #handle = null;
  #url;

  constructor(url, options = {}) {
    super();
    if (arguments.length === 0) throw new TypeError('Worker constructor: At least 1 argument required');
    this.#url = String(url);
    const name = options?.name === undefined ? undefined : String(options.name);
    try {
      this.#handle = host.Worker.spawn(componentLocation(url), { name });
    } catch (error) {
      // As a browser reports a script it cannot fetch: an `error` event, after this task.
      const why = String(error?.payload ?? error);
      later(() => dispatch(this, new ErrorEvent('error', { message: why, filename: this.#url, cancelable: true })));
      return;
    }
    children.set(this.#handle.id(), this);
  }

  postMessage(message, transfer) {
    send(this.#handle, encodeMessage(message, transfer));
  }

  terminate() {
    if (this.#handle === null) return;
    children.delete(this.#handle.id());
    this.#handle.terminate();
    dispose(this.#handle);
    this.#handle = null;
  }

  get [Symbol.toStringTag]() { return 'Worker'; }

  static {
    urlOf = (worker) => worker.#url;
    // The child has ended: its handle is let go (which does not terminate anything).
    ended = (worker) => {
      if (worker.#handle !== null) children.delete(worker.#handle.id());
      dispose(worker.#handle);
      worker.#handle = null;
    };
  }
}
eventHandlers(Worker.prototype, ['message', 'messageerror', 'error']);

/** A connection to a shared worker (HTML `SharedWorker`): talk to it on `port`. */
class SharedWorker extends EventTarget {
  #port;
  constructor(url, options) {
    super();
    if (arguments.length === 0) throw new TypeError('SharedWorker constructor: At least 1 argument required');
    const name = typeof options === 'object' && options !== null ? String(options.name ?? '') : String(options ?? '');
    try {
      this.#port = adoptPort(host.connectSharedWorker(componentLocation(url), name));
    } catch (error) {
      this.#port = adoptPort(null);
      const why = String(error?.payload ?? error);
      later(() => dispatch(this, new ErrorEvent('error', { message: why, filename: String(url), cancelable: true })));
    }
  }
  get port() { return this.#port; }
  get [Symbol.toStringTag]() { return 'SharedWorker'; }
}
eventHandlers(SharedWorker.prototype, ['error']);

// ---------------------------------------------------------------------------------------
// Timers

const timers = new Map();

function timerDelay(delay) {
  const ms = Math.trunc(Number(delay));
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, 0xffffffff) : 0;
}

function setTimer(repeat, handler, delay, args) {
  const callback = typeof handler === 'function' ? handler : () => (0, eval)(String(handler));
  const ms = timerDelay(delay);
  const id = repeat ? host.setInterval(ms) : host.setTimeout(ms);
  timers.set(id, { callback, args, repeat });
  return id;
}

function clearTimer(id) {
  id = Number(id) >>> 0;
  if (timers.delete(id)) host.clearTimer(id);
}

/** Runs `f` as a task of its own, after this one (for events HTML queues). */
function later(f) {
  const id = host.setTimeout(0);
  timers.set(id, { callback: f, args: [], repeat: false, internal: true });
}

// ---------------------------------------------------------------------------------------
// The global scope

let closing = false;
let script = null;
const scripts = new Map();

/** Adds a script to the bundle (called by the bundle's entry, at build time). */
export function addScript(stem, filename, source) {
  scripts.set(stem, { filename, source });
}

const workerLocation = {
  get href() { return host.location(); },
  get pathname() { return host.location(); },
  get protocol() { return 'file:'; },
  get origin() { return 'null'; },
  get host() { return ''; },
  get hostname() { return ''; },
  get port() { return ''; },
  get search() { return ''; },
  get hash() { return ''; },
  toString() { return host.location(); },
};

const navigator = Object.freeze({
  get hardwareConcurrency() { return host.hardwareConcurrency(); },
  userAgent: 'wasm-workers',
  language: 'en',
  languages: Object.freeze(['en']),
  onLine: true,
});

function installGlobalScope() {
  // The global object is the worker's `EventTarget`.
  for (const key of ['addEventListener', 'removeEventListener', 'dispatchEvent']) {
    Object.defineProperty(globalThis, key, { value: EventTarget.prototype[key], writable: true, configurable: true });
  }
  for (const type of ['message', 'messageerror', 'error', 'connect']) {
    Object.defineProperty(globalThis, `on${type}`, {
      get() { return getHandler(globalThis, type); },
      set(value) { setHandler(globalThis, type, value); },
      enumerable: true,
      configurable: true,
    });
  }
  const values = {
    self: globalThis,
    Event,
    EventTarget,
    MessageEvent,
    ErrorEvent,
    MessagePort,
    MessageChannel,
    Worker,
    SharedWorker,
    navigator,
    postMessage(message, transfer) {
      send(host, encodeMessage(message, transfer));
    },
    close() {
      closing = true;
      host.close();
    },
    setTimeout: (handler, delay, ...args) => setTimer(false, handler, delay, args),
    setInterval: (handler, delay, ...args) => setTimer(true, handler, delay, args),
    clearTimeout: clearTimer,
    clearInterval: clearTimer,
    // Scripts of this worker's bundle, run in order in this global scope (10.3.1): a URL
    // names a script by its file name, `x.js` for the bundle's `x.js`.
    importScripts(...urls) {
      const found = urls.map((url) => {
        const file = String(url).slice(String(url).lastIndexOf('/') + 1);
        const imported = scripts.get(file.replace(/\.m?js$/, ''));
        if (imported === undefined) {
          throw new DOMException(`importScripts: \`${url}\` is not a script of this worker's bundle`, 'NetworkError');
        }
        return imported;
      });
      for (const imported of found) runScript(imported.source);
    },
  };
  for (const [key, value] of Object.entries(values)) {
    Object.defineProperty(globalThis, key, { value, writable: true, enumerable: false, configurable: true });
  }
  Object.defineProperty(globalThis, 'name', { get: () => host.name(), configurable: true, enumerable: true });
  Object.defineProperty(globalThis, 'location', { value: workerLocation, configurable: true, enumerable: true });
}

/**
 * Runs a script in the global scope, as a classic script (an indirect `eval`). A strict
 * script's top-level functions stay its own: its event handlers declared as functions
 * (`function onmessage(e) {}`) are made the global's handlers after it ran.
 */
function runScript(source) {
  (0, eval)(`${source}\n;${HANDLER_TRAILER}`);
}
const HANDLER_TRAILER = ['message', 'messageerror', 'error', 'connect']
  .map((type) => `if (typeof on${type} === 'function' && globalThis.on${type} !== on${type}) globalThis.on${type} = on${type};`)
  .join(' ');

/** The script this worker runs: the one named like its component, or the only one. */
function chooseScript() {
  const location = host.location();
  const file = location.slice(location.lastIndexOf('/') + 1);
  const stem = file.replace(/\.[^.]*$/, '');
  if (scripts.has(stem)) return scripts.get(stem);
  if (scripts.size === 1) return scripts.values().next().value;
  throw new Error(`this bundle has no script for \`${file}\` (it has ${[...scripts.keys()].map((s) => `${s}.js`).join(', ')})`);
}

/** Where a message came from (`source` of a burst's header): its target here, if any. */
function targetOf(kind, id) {
  switch (kind) {
    case 0:
      return globalThis;
    case 1:
      return children.get(id);
    default:
      return ports.get(id);
  }
}

/** The codecs by their header word. */
const CODECS = ['json', 'postcard', 'raw', 'structured-clone'];
const NOTHING = Object.freeze([]);

export const handlers = {
  onStart() {
    task(() => {
      script = chooseScript();
      runScript(script.source);
    });
  },

  onMessages(burst) {
    // `transfer` and `errors` are options, absent (not empty) when there is nothing in them.
    // `events` is the events' bytes, then five little-endian words per event, then the
    // number of events (`message-burst` in the WIT).
    const { events, transfer, errors } = burst;
    const failed = errors == null || errors.length === 0 ? undefined : new Map(errors);
    const words = new DataView(events.buffer, events.byteOffset, events.byteLength);
    const total = events.byteLength < 4 ? 0 : words.getUint32(events.byteLength - 4, true);
    const start = events.byteLength - 4 - total * 20;
    if (start < 0) return 0;
    const header = (event, word) => words.getUint32(start + event * 20 + word * 4, true);
    let offset = 0;
    let transferred = 0;
    let discarded = 0;
    for (let event = 0; event < total; event += 1) {
      const len = header(event, 3);
      const count = header(event, 4);
      const bytes = events.subarray(Math.min(offset, start), Math.min(offset + len, start));
      const objects = count === 0 ? NOTHING : transfer.slice(transferred, transferred + count);
      offset += len;
      transferred += count;
      const target = closing ? undefined : targetOf(header(event, 0), header(event, 1));
      if (target === undefined) {
        discardTransfer(objects);
        discarded += 1;
        continue;
      }
      const codec = CODECS[header(event, 2)];
      const error = failed?.get(event);
      task(() => dispatch(target, messageEvent(codec, bytes, objects, error)));
    }
    return discarded;
  },

  onError(source, error) {
    if (source.tag !== 'child') return;
    const child = children.get(source.val);
    if (child === undefined) return;
    ended(child);
    task(() => {
      const event = new ErrorEvent('error', {
        message: error.message,
        filename: urlOf(child),
        lineno: error.lineno,
        colno: error.colno,
        cancelable: true,
      });
      // Not handled at the `Worker` object, it is this worker's own uncaught error.
      if (dispatch(child, event)) {
        reportException(event, { message: error.message, filename: urlOf(child), lineno: error.lineno, colno: error.colno });
      }
    });
  },

  onClose(source) {
    if (source.tag === 'child') {
      if (children.has(source.val)) ended(children.get(source.val));
    } else if (source.tag === 'port') {
      const port = ports.get(source.val);
      if (port !== undefined) {
        disentangle(port);
        task(() => dispatch(port, new Event('close')));
      }
    }
  },

  onConnect(handle) {
    const port = adoptPort(handle);
    if (closing) return;
    task(() => dispatch(globalThis, new MessageEvent('connect', { data: '', ports: [port] })));
  },

  onTimeout(id) {
    const timer = timers.get(id);
    if (timer === undefined || closing) return;
    if (!timer.repeat) timers.delete(id);
    task(() => timer.callback(...timer.args));
  },
};

// At build time: the bundle's snapshot holds the global scope ready.
installGlobalScope();
