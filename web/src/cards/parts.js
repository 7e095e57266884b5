// Small building blocks the card renderers share: meta lines, people, tally bars, deadlines.

import { h, avatar, formatClock, formatWhen } from '../dom.js';

/** "a · b · c" from the truthy parts (strings or nodes). */
export function metaLine(parts, extraClass = '') {
  const items = parts.filter(Boolean);
  if (!items.length) return null;
  // The separator is each item's ::before (app.css), so a wrapped line never ends in a dot.
  return h('p', { class: `card-info ${extraClass}`.trim() }, items.map((part) => (typeof part === 'string' ? h('span', {}, part) : part)));
}

/** The card's description, when it has one. */
export function description(p) {
  return p.description ? h('p', { class: 'card-desc' }, p.description) : null;
}

/** "Closes tomorrow 14:00" / "Closed …" for a deadline; `late` marks it. */
export function deadlineText(word, at, { late = false, pastWord = '' } = {}) {
  if (!at) return null;
  const passed = Date.now() >= at;
  const text = passed && pastWord ? `${pastWord} ${formatWhen(at)}` : `${word} ${formatWhen(at)}`;
  return h('span', { class: `card-deadline${late ? ' is-late' : ''}`, title: new Date(at).toLocaleString() }, text);
}

/** A person: tiny avatar and name, with an optional state word (`tone`: good, bad, muted, open). */
export function person(uid, ui, { note = '', tone = '', key = uid, extraClass = '' } = {}) {
  return h(
    'li',
    { class: `person-row${tone ? ` person-row--${tone}` : ''} ${extraClass}`.trim(), dataset: { key, uid } },
    avatar(uid, ui.fullName(uid), 'avatar--tiny'),
    h('span', { class: 'person-name' }, ui.name(uid)),
    note ? h('span', { class: 'person-note' }, note) : null,
  );
}

/** A tally bar: a track with a fill of `fraction` (0..1); the width change is a transition. */
export function bar(fraction, key = '') {
  const pct = Math.max(0, Math.min(1, Number(fraction) || 0)) * 100;
  return h('span', { class: 'tally-bar', dataset: key ? { key } : null }, h('span', { class: 'tally-fill', style: { width: `${pct.toFixed(1)}%` } }));
}

/** One result row: label, count and share, and its bar. */
export function resultRow(label, count, total, { key = label, mine = false, top = false } = {}) {
  const share = total ? count / total : 0;
  return h(
    'li',
    { class: `result-row${mine ? ' is-mine' : ''}${top ? ' is-top' : ''}`, dataset: { key, count: String(count) } },
    h('span', { class: 'result-label' }, label),
    h('span', { class: 'result-count' }, String(count), h('small', {}, ` · ${Math.round(share * 100)}%`)),
    bar(share),
  );
}

/** "09:10:05" of a unix-ms time, or ''. */
export function at(ms) {
  return ms ? formatClock(ms) : '';
}

/** "you" in the middle of a sentence, else the display name. */
export function byName(uid, ui) {
  const name = ui.name(uid);
  return name === 'You' ? 'you' : name;
}

/** A list of names: "Bob", "Bob and Carol", "Bob, Carol and Dave". */
export function names(uids, ui) {
  const list = uids.map((u) => ui.name(u));
  if (list.length <= 1) return list.join('');
  return `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
}

/** A picker of people (toggle chips); `selected` a Set of uids, `onToggle(uid)`. */
export function peoplePicker(people, selected, onToggle, { disabled = false, label = 'People' } = {}) {
  return h(
    'div',
    { class: 'people-picker', role: 'group', 'aria-label': label },
    people.map((p) =>
      h(
        'button',
        {
          type: 'button',
          class: `pick-chip${selected.has(p.uid) ? ' is-on' : ''}`,
          'aria-pressed': String(selected.has(p.uid)),
          dataset: { key: p.uid, uid: p.uid },
          disabled,
          onclick: () => onToggle(p.uid),
        },
        avatar(p.uid, p.name, 'avatar--tiny'),
        h('span', {}, p.label || p.name || p.uid),
      ),
    ),
  );
}
