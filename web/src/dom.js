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
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
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
