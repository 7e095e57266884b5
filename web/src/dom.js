// Tiny DOM helpers: no framework, every element is built with h() and patched in place.

/**
 * h('div', {class: 'x', dataset: {id: '1'}, onclick: fn}, child, [children], 'text')
 * Attributes: `class`, `dataset`, `style` (object), `on<event>` handlers, boolean props
 * (`disabled`, `hidden`), anything else via setAttribute. Children: nodes, strings, arrays,
 * null/undefined/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      // Handlers live on the element (el.__on) behind one stable listener, so morph() can
      // hand a patched element the handlers of its replacement.
      const type = key.slice(2).toLowerCase();
      (el.__on || (el.__on = {}))[type] = value;
      el.addEventListener(type, dispatch);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function dispatch(event) {
  const fn = this.__on && this.__on[event.type];
  return fn ? fn.call(this, event) : undefined;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace all children of `el`. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Swap the one `prefix*` class of `el` (e.g. status-pending -> status-approved). */
export function swapClass(el, prefix, value) {
  for (const c of [...el.classList]) if (c.startsWith(prefix)) el.classList.remove(c);
  if (value) el.classList.add(prefix + value);
}

const PALETTE = ['#6366f1', '#0ea5e9', '#10b981', '#f59e0b', '#ef4444', '#8b5cf6', '#14b8a6', '#ec4899'];

/** A round avatar with initials and a colour derived from `id`. */
export function avatar(id, label, extraClass = '') {
  let hash = 0;
  for (const ch of String(id)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const initials = String(label || id).replace(/[^\p{L}\p{N}]/gu, '').slice(0, 2).toUpperCase() || '#';
  return h('span', { class: `avatar ${extraClass}`, style: { background: PALETTE[hash % PALETTE.length] }, 'aria-hidden': 'true' }, initials);
}

/** "14:05" today, "Mon 14:05" this week, else "2024-05-01". */
export function formatTime(unixSeconds) {
  if (!unixSeconds) return '';
  const d = new Date(unixSeconds * 1000);
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return hm;
  if (now - d < 6 * 86400 * 1000) return `${d.toLocaleDateString([], { weekday: 'short' })} ${hm}`;
  return d.toISOString().slice(0, 10);
}

/** Milliseconds (or seconds) since the epoch -> "14:05:09". */
export function formatClock(ms) {
  if (!ms) return '';
  const value = ms < 1e12 ? ms * 1000 : ms;
  return new Date(value).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** A random UUID (crypto.randomUUID needs a secure context; 127.0.0.1 is one, a LAN IP is not). */
export function uuid() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// --- morph: patch a live subtree to look like a freshly built one ---------------------------
//
// Renderers rebuild their whole body on every state change; morph() applies the difference to
// the live nodes instead of swapping them, so CSS transitions run (a tally bar's width, a
// status colour), inputs keep focus, caret and typed text, and nothing flickers. Children
// are matched by tag and `data-key` (unkeyed ones by position).

function keyOf(node) {
  return node.nodeType === 1 ? node.getAttribute('data-key') || '' : '';
}

function sameKind(a, b) {
  return a.nodeType === b.nodeType && a.nodeName === b.nodeName && keyOf(a) === keyOf(b);
}

function morphAttributes(from, to) {
  for (const { name } of [...from.attributes]) if (!to.hasAttribute(name)) from.removeAttribute(name);
  for (const { name, value } of [...to.attributes]) if (from.getAttribute(name) !== value) from.setAttribute(name, value);
}

function morphHandlers(from, to) {
  const next = to.__on || null;
  if (next) for (const type of Object.keys(next)) if (!from.__on || !(type in from.__on)) from.addEventListener(type, dispatch);
  from.__on = next ? { ...next } : from.__on ? {} : undefined;
}

/** Form controls: the live value follows the new node's (not while the user types in it). */
function morphControl(from, to) {
  if (from.tagName === 'TEXTAREA' || (from.tagName === 'INPUT' && !/^(checkbox|radio)$/i.test(from.type))) {
    const want = to.tagName === 'TEXTAREA' ? to.textContent : to.getAttribute('value') || '';
    if (from.value !== want && document.activeElement !== from) from.value = want;
    if (from.tagName === 'TEXTAREA' && from.defaultValue !== want) from.defaultValue = want;
  } else if (from.tagName === 'INPUT') {
    from.checked = to.hasAttribute('checked');
  }
}

/** Make `from` (live) look like `to` (detached); returns the node now in the document. */
export function morph(from, to) {
  if (!sameKind(from, to)) {
    from.replaceWith(to);
    return to;
  }
  if (from.nodeType !== 1) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return from;
  }
  morphAttributes(from, to);
  morphHandlers(from, to);
  if (from.tagName === 'TEXTAREA') {
    morphControl(from, to);
    return from;
  }
  if (from.tagName === 'SELECT') {
    const want = to.querySelector('option[selected]');
    from.replaceChildren(...to.childNodes);
    if (want) from.value = want.value;
    return from;
  }
  morphChildren(from, [...to.childNodes]);
  if (from.tagName === 'INPUT') morphControl(from, to);
  return from;
}

/** Make the children of `parent` look like `next` (nodes, strings, arrays, nulls skipped). */
export function morphChildren(parent, next) {
  const wanted = [];
  (function flat(list) {
    for (const c of list) {
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) flat(c);
      else wanted.push(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  })(Array.isArray(next) ? next : [next]);
  const old = [...parent.childNodes];
  const keyed = new Map();
  for (const node of old) if (keyOf(node)) keyed.set(keyOf(node), node);
  const used = new Set();
  let cursor = parent.firstChild;
  for (const node of wanted) {
    const key = keyOf(node);
    let match = null;
    if (key) {
      const candidate = keyed.get(key);
      if (candidate && !used.has(candidate) && sameKind(candidate, node)) match = candidate;
    } else if (cursor && !keyOf(cursor) && sameKind(cursor, node)) match = cursor;
    if (!match) {
      parent.insertBefore(node, cursor);
      continue;
    }
    used.add(match);
    if (match === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(match, cursor);
    morph(match, node);
  }
  for (const node of old) if (!used.has(node) && node.parentNode === parent) node.remove();
  return parent;
}

/** Unix ms -> "14:05" today, "tomorrow 09:00", "Tue 14:05" within a week, else "3 Dec 14:05". */
export function formatWhen(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const day = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((day(d) - day(now)) / 86400000);
  if (days === 0) return `today ${hm}`;
  if (days === 1) return `tomorrow ${hm}`;
  if (days === -1) return `yesterday ${hm}`;
  if (Math.abs(days) < 7) return `${d.toLocaleDateString([], { weekday: 'short' })} ${hm}`;
  const year = d.getFullYear() === now.getFullYear() ? undefined : 'numeric';
  return `${d.toLocaleDateString([], { day: 'numeric', month: 'short', year })} ${hm}`;
}
