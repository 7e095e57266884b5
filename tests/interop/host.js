'use strict';
// Magpie interop host: one Node process that runs many official-SDK clients, each in its own
// worker thread (dist/driver.cjs). Starting a worker costs a fraction of starting Node, and a
// worker still gives each client its own JS realm, module registry (so its own WKSDK.shared()
// singletons), event loop and WebSocket: clients never share SDK state.
//
//   node dist/host.cjs
//
// stdin: one JSON object per line, addressed to a client by the id the caller chose:
//   {"op":"spawn","client":N,"config":{...},"log":"/path"}  start client N (driver config);
//                                                           its stdout/stderr go to the log file
//   {"op":"cmd","client":N,"cmd":{...}}                     a driver command (README.md)
//   {"op":"terminate","client":N}                           stop client N's thread at once
// stdout: one JSON object per line: {"event":"host_ready","pid","node"} first, then the
// driver's events with "client":N added, and {"client":N,"event":"exit","code"} when a client's
// thread has ended (after every event it sent). Host problems are {"event":"host_error"}.
// When stdin closes, every client is terminated and the host exits.

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { Worker } = require('node:worker_threads');

const DRIVER = path.join(__dirname, 'driver.cjs'); // both bundles live in dist/
const clients = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function hostError(error, extra) {
  out({ event: 'host_error', error: String(error && error.stack ? error.stack : error), ...extra });
}

function spawn(msg) {
  const id = msg.client;
  if (clients.has(id)) return hostError(`client ${id} already exists`, { client: id });
  const log = fs.createWriteStream(msg.log, { flags: 'a' });
  log.on('error', (err) => hostError(err, { client: id }));
  const worker = new Worker(DRIVER, { workerData: msg.config, stdout: true, stderr: true });
  worker.stdout.pipe(log, { end: false });
  worker.stderr.pipe(log, { end: false });
  const prefix = `{"client":${JSON.stringify(id)},`;
  // Each message is the text of one driver event object: add the client id to it.
  worker.on('message', (text) => process.stdout.write(prefix + String(text).slice(1) + '\n'));
  worker.on('error', (err) => {
    out({ client: id, event: 'error', source: 'worker', error: String(err && err.stack) });
  });
  worker.on('exit', (code) => {
    clients.delete(id);
    log.end(() => out({ client: id, event: 'exit', code }));
  });
  clients.set(id, worker);
}

function handle(msg) {
  const worker = clients.get(msg.client);
  switch (msg.op) {
    case 'spawn':
      return spawn(msg);
    case 'cmd':
      if (!worker) return hostError(`no client ${msg.client}`, { client: msg.client });
      return worker.postMessage(msg.cmd);
    case 'terminate':
      if (worker) worker.terminate();
      return undefined;
    default:
      return hostError(`unknown op ${JSON.stringify(msg.op)}`);
  }
}

function onLine(line) {
  const text = line.trim();
  if (!text) return;
  try {
    handle(JSON.parse(text));
  } catch (err) {
    hostError(err, { line: text.slice(0, 500) });
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
rl.on('line', onLine);
// The test run went away (or closed our stdin): no client may linger with a live connection.
rl.on('close', async () => {
  await Promise.all(Array.from(clients.values(), (worker) => worker.terminate()));
  process.exit(0);
});
process.stdout.on('error', () => process.exit(0)); // nobody is reading any more

out({ event: 'host_ready', pid: process.pid, node: process.version });
