'use strict';
// Loaded by driver.js before anything from wukongimjssdk.
//
// 1. Node 20 has no global WebSocket; the SDK does `new WebSocket(addr)` and uses the
//    browser-style onopen/onmessage/onclose/onerror + binaryType API, which `ws` provides.
// 2. The SDK logs with console.log unconditionally (not only when config.debug is set).
//    stdout is the driver's JSON-lines event channel, so every console method except
//    console.error is redirected to stderr here, before the SDK can log anything.

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
