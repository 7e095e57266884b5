'use strict';
// Loaded by driver.js before anything from wukongimjssdk.
//
// 1. Node 20 has no global WebSocket; the SDK does `new WebSocket(addr)` and uses the
//    browser-style onopen/onmessage/onclose/onerror + binaryType API, which `ws` provides.
// 2. The SDK logs with console.log unconditionally (not only when config.debug is set).
//    Events travel to the host as worker messages, and the host writes this thread's stdout
//    and stderr to the client's log file; every console method except console.error is
//    redirected to stderr here, before the SDK can log anything, so that log is one ordered
//    stream.

const util = require('node:util');

function toStderr(...args) {
  process.stderr.write(util.format(...args) + '\n');
}

console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;
console.warn = toStderr;
console.trace = (...args) => {
  const err = new Error(util.format(...args));
  err.name = 'Trace';
  process.stderr.write(String(err.stack) + '\n');
};
console.dir = (obj, options) => process.stderr.write(util.inspect(obj, options) + '\n');
console.table = toStderr;

globalThis.WebSocket = require('ws');
