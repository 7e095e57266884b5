// HTTP calls to the Magpie API with the user's token. Every id is kept as a string: JSON
// numbers above 2^53 (int64 message ids) would lose digits in JavaScript.

/** An HTTP error with the API's stable error code (`body.code`) and the parsed body. */
export class HttpError extends Error {
  constructor(method, path, status, body, text) {
    const detail = body && body.msg ? body.msg : String(text || '').slice(0, 200);
    super(`${method} ${path} -> HTTP ${status}${detail ? `: ${detail}` : ''}`);
    this.status = status;
    this.code = body && body.code ? body.code : '';
    this.body = body;
  }
}

/**
 * JSON.parse that turns integers beyond Number.MAX_SAFE_INTEGER into their exact decimal
 * strings (uses the reviver's source text where the browser has it; elsewhere the API's
 * *_str / *_idstr fields are what the app reads anyway).
 */
export function parseJSON(text) {
  return JSON.parse(text, function revive(_key, value, context) {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source || '')) {
      return context.source;
    }
    return value;
  });
}

export class Api {
  /** `base`: the API base URL ('' = this origin). `token`: the user token (Bearer). */
  constructor(base, token) {
    this.base = String(base || '').replace(/\/+$/, '');
    this.token = token || '';
    this.epoch = '';
    this.epochListeners = [];
    /** The token was refused (401): e.g. a newer login of this user on the same kind of
     * device replaced it. No request is sent after that (each would count as a failed
     * credential against this address). */
    this.refused = false;
    this.refusedListeners = [];
    /** Whether the page holds data from the server (set by the app): see noteEpoch. */
    this.holdsData = () => false;
  }

  /** Called with (newEpoch, oldEpoch) when X-Magpie-Epoch changes (the store was replaced). */
  onEpochChange(fn) {
    this.epochListeners.push(fn);
  }

  /** Called once when the server refuses the token (401). */
  onRefused(fn) {
    this.refusedListeners.push(fn);
  }

  /** Throw instead of sending when the token was refused; note a 401 answer. */
  guard(method, path, res) {
    if (res === null) {
      if (this.refused && this.token) throw new HttpError(method, path, 401, { code: 'token_refused', msg: 'this session was signed out' }, '');
      return;
    }
    if (res.status === 401 && this.token && !this.refused) {
      this.refused = true;
      for (const fn of this.refusedListeners) fn();
    }
  }

  /**
   * Adopt the server store's epoch (I7). A different one means another store: listeners
   * drop what the page cached. So does the first epoch heard while the page already holds
   * data — nothing tells which store that data came from, so it counts as stale.
   */
  noteEpoch(epoch) {
    if (!epoch || epoch === this.epoch) return;
    const old = this.epoch;
    this.epoch = epoch;
    if (old || this.holdsData()) for (const fn of this.epochListeners) fn(epoch, old);
  }

  async request(method, path, body, { auth = true, timeoutMs = 15000 } = {}) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (auth && this.token) headers.authorization = `Bearer ${this.token}`;
    if (auth) this.guard(method, path, null);
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    this.noteEpoch(res.headers.get('x-magpie-epoch'));
    if (auth) this.guard(method, path, res);
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = parseJSON(text);
      } catch (_err) {
        data = null;
      }
    }
    if (!res.ok) throw new HttpError(method, path, res.status, data, text);
    return data;
  }

  get(path, opts) {
    return this.request('GET', path, undefined, opts);
  }

  /** GET a binary resource (a file download) with the token: a Blob. */
  async blob(path, { timeoutMs = 60000 } = {}) {
    const headers = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    this.guard('GET', path, null);
    const res = await fetch(this.base + path, { headers, signal: AbortSignal.timeout(timeoutMs) });
    this.guard('GET', path, res);
    if (!res.ok) {
      const text = await res.text();
      let data = null;
      try {
        data = parseJSON(text);
      } catch (_err) {
        data = null;
      }
      throw new HttpError('GET', path, res.status, data, text);
    }
    return res.blob();
  }

  /** POST raw bytes (a file upload) with the token; the JSON answer. */
  async upload(path, body, { timeoutMs = 120000 } = {}) {
    const headers = { accept: 'application/json', 'content-type': 'application/octet-stream' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    this.guard('POST', path, null);
    const res = await fetch(this.base + path, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
    this.noteEpoch(res.headers.get('x-magpie-epoch'));
    this.guard('POST', path, res);
    const text = await res.text();
    let data = null;
    try {
      data = text ? parseJSON(text) : null;
    } catch (_err) {
      data = null;
    }
    if (!res.ok) throw new HttpError('POST', path, res.status, data, text);
    return data;
  }

  post(path, body, opts) {
    return this.request('POST', path, body === undefined ? {} : body, opts);
  }
}

/** A bare JSON array, or the array in a `{data: [...]}` wrapper; else an error. */
export function rowsOf(body, what) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body.data)) return body.data;
  throw new Error(`${what}: expected a JSON array`);
}
