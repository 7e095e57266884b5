// vote@1 (docs/cards.md section 3): options with live tally bars, the viewer's choice
// marked, results hidden until the vote closes where the card says so, voters' names only on
// named votes (an anonymous vote's projection has none to show), close for the creator.
//
// A single-choice vote is cast by clicking an option; a multiple-choice one by selecting
// options and pressing "Vote" in the action bar. The tallies move at once (optimistic) and
// settle to the server's numbers.

import { h } from '../dom.js';
import { registerCard } from './registry.js';
import { deadlineText, description, metaLine } from './parts.js';

function selectionOf(p, ui) {
  if (!Array.isArray(ui.draft.selection)) ui.draft.selection = [...(p.my_vote || [])];
  return ui.draft.selection;
}

function sameSet(a, b) {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

function meFirst(uids, me) {
  return uids.includes(me) ? [me, ...uids.filter((u) => u !== me)] : uids;
}

function choiceText(s) {
  if (!s.multiple) return 'Single choice';
  return s.max_selections && s.max_selections < (s.options || []).length ? `Up to ${s.max_selections} choices` : 'Multiple choice';
}

function optionRow(label, i, p, ui, ctx) {
  const { s, visible, mine, canVote, selection, top } = ctx;
  const n = visible ? s.tallies[i] || 0 : 0;
  const share = visible && s.voters ? n / s.voters : 0;
  const chosen = mine.has(i);
  const selected = s.multiple ? selection.includes(i) : chosen;
  const sending = ui.pending && ui.pending.action === 'vote' && ((ui.pending.params && ui.pending.params.options) || []).includes(i);
  const voters = visible && Array.isArray(s.voters_by_option) ? s.voters_by_option[i] || [] : [];
  const pick = () => {
    if (s.multiple) {
      if (!selection.includes(i) && s.max_selections && selection.length >= s.max_selections) return; // at most max_selections
      ui.draft.selection = selection.includes(i) ? selection.filter((x) => x !== i) : [...selection, i].sort((a, b) => a - b);
      ui.repaint();
    } else if (!chosen) ui.act('vote', { options: [i] });
  };
  const classes = ['vote-option', s.multiple ? 'vote-option--multi' : '', chosen ? 'is-mine' : '', selected ? 'is-selected' : '', visible && top && n === top ? 'is-top' : '', sending ? 'is-sending' : '', canVote ? '' : 'is-static'];
  return h(
    'li',
    { class: 'vote-item', dataset: { key: `option-${i}` } },
    h(
      'button',
      {
        type: 'button',
        class: classes.filter(Boolean).join(' '),
        dataset: { option: String(i), tally: visible ? String(n) : '', mine: chosen ? '1' : '0' },
        'aria-pressed': String(selected),
        disabled: !canVote || Boolean(ui.pending),
        onclick: pick,
      },
      h('span', { class: 'vote-fill', style: { width: `${(share * 100).toFixed(1)}%` } }),
      h('span', { class: 'vote-check', 'aria-hidden': 'true' }),
      h('span', { class: 'vote-label' }, label),
      chosen ? h('span', { class: 'vote-mine' }, 'Your vote') : null,
      visible ? h('span', { class: 'vote-count' }, String(n), h('small', {}, ` · ${Math.round(share * 100)}%`)) : null,
    ),
    voters.length ? h('p', { class: 'vote-voters' }, meFirst(voters, ui.me).map((uid) => ui.name(uid)).join(', ') + (n > voters.length ? ` and ${n - voters.length} more` : '')) : null,
  );
}

function renderVote(message, p, ui) {
  const s = { options: [], voters: 0, ...(p.state || {}) };
  const visible = Boolean(s.results_visible) && Array.isArray(s.tallies);
  const canVote = ui.can('vote');
  const ctx = {
    s,
    visible,
    mine: new Set(p.my_vote || []),
    canVote,
    selection: s.multiple ? selectionOf(p, ui) : [],
    top: visible ? Math.max(0, ...s.tallies) : 0,
  };
  const closes = p.status === 'open' ? deadlineText('Closes', s.closes_at) : null;
  return h(
    'div',
    { class: `card-vote${visible ? '' : ' card-vote--hidden'}` },
    description(p),
    metaLine([choiceText(s), s.anonymous ? 'Anonymous' : '', `${s.voters} ${s.voters === 1 ? 'voter' : 'voters'}`, closes]),
    h('ul', { class: 'vote-options' }, s.options.map((label, i) => optionRow(label, i, p, ui, ctx))),
    visible ? null : h('p', { class: 'card-hint vote-hidden' }, 'Results are shown when the vote closes.'),
  );
}

function outcome(p, ui) {
  const s = p.state || {};
  if (p.status === 'closed') return p.outcome || 'Closed';
  const labels = s.options || [];
  const mine = (p.my_vote || []).map((i) => labels[i]).filter(Boolean);
  if (mine.length) {
    const change = ui.can('vote') ? (s.multiple ? ' — change the selection to vote again' : ' — pick another option to change it') : '';
    return `You voted for ${mine.join(', ')}${change}`;
  }
  if (ui.can('vote') && s.multiple) {
    const most = s.max_selections && s.max_selections < labels.length ? `up to ${s.max_selections} options` : 'one or more options';
    return `Choose ${most}, then vote`;
  }
  if (p.outcome) return p.outcome;
  return p.unavailable_reason ? p.unavailable_reason.replace(/^./, (c) => c.toUpperCase()) : '';
}

/** The ballot shown at once: my choice marked, the visible tallies moved. */
function optimistic(p, action, params, me) {
  if (action !== 'vote') return null;
  const s = p.state || {};
  const chosen = params.options || [];
  const before = p.my_vote || [];
  const tallies = Array.isArray(s.tallies) ? s.tallies.slice() : s.tallies;
  if (Array.isArray(tallies)) {
    for (const i of before) tallies[i] = Math.max(0, (tallies[i] || 0) - 1);
    for (const i of chosen) tallies[i] = (tallies[i] || 0) + 1;
  }
  let byOption = s.voters_by_option;
  if (Array.isArray(byOption)) {
    byOption = byOption.map((uids, i) => {
      const rest = uids.filter((u) => u !== me);
      return chosen.includes(i) ? [...rest, me] : rest;
    });
  }
  const voters = (s.voters || 0) + (before.length ? 0 : 1);
  return { my_vote: chosen, state: { ...s, tallies, voters, voters_by_option: byOption } };
}

registerCard('vote', renderVote, {
  outcome,
  optimistic,
  button: (action, p, ui) => {
    if (action === 'close') return { minor: true, label: 'Close vote' };
    if (action !== 'vote') return {};
    const s = p.state || {};
    if (!s.multiple) return null; // the options are the buttons
    // The button takes the outcome line's place once there is something new to send.
    const selection = selectionOf(p, ui);
    if (!selection.length || sameSet(selection, p.my_vote || [])) return null;
    return { label: p.my_vote ? 'Change vote' : `Vote (${selection.length})` };
  },
  params: (action, p, ui) => (action === 'vote' ? { options: [...selectionOf(p, ui)].sort((a, b) => a - b) } : {}),
});
