// approval@1 (docs/cards.md section 3): approvers approve or reject with an optional
// comment; the creator (and admins) may withdraw; it may expire. Approved shows the green
// mark, rejected red, expired and withdrawn grey (the shell's tones); every approver's row
// says who decided what and when.

import { h } from '../dom.js';
import { registerCard } from './registry.js';
import { at, bar, byName, deadlineText, description, metaLine, person } from './parts.js';

const MODES = {
  single: (s) => (s.approvers.length > 1 ? 'The first answer decides' : 'One approver decides'),
  all: () => 'Every approver must approve',
  quorum: (s) => `${s.quorum} of ${s.approvers.length} approvals needed`,
  sequential: () => 'Approvers decide in order',
};

function approverRow(uid, index, p, ui, decisions) {
  const s = p.state;
  const d = decisions.get(uid);
  const pendingMine = uid === ui.me && ui.pending && (ui.pending.action === 'approve' || ui.pending.action === 'reject');
  let state = 'waiting';
  let note = p.status === 'pending' ? 'Waiting' : '—';
  if (d) {
    state = d.decision === 'approve' ? 'approved' : 'rejected';
    note = `${d.decision === 'approve' ? 'Approved' : 'Rejected'} ${at(d.at)}`;
  } else if (pendingMine) {
    state = 'sending';
    note = ui.pending.action === 'approve' ? 'Approving…' : 'Rejecting…';
  } else if (s.mode === 'sequential' && p.status === 'pending') {
    if (index === s.step) {
      state = 'turn';
      note = uid === ui.me ? 'Your turn' : 'Their turn';
    } else note = 'Later';
  }
  const tone = { approved: 'good', rejected: 'bad', turn: 'open', sending: 'open' }[state] || 'muted';
  const row = person(uid, ui, { note, tone, extraClass: `approver approver--${state}` });
  row.dataset.decision = state;
  if (d && d.comment) row.append(h('span', { class: 'approver-comment' }, `“${d.comment}”`));
  return row;
}

function renderApproval(message, p, ui) {
  const s = { approvers: [], decisions: [], ...(p.state || {}) };
  const decisions = new Map(s.decisions.map((d) => [d.uid, d]));
  const needed = s.mode === 'single' ? 1 : s.mode === 'quorum' ? s.quorum : s.approvers.length;
  const counting = s.mode !== 'single' && s.approvers.length > 1;
  const deciding = ui.can('approve') || ui.can('reject');
  const expires = p.status === 'pending' ? deadlineText('Expires', s.expires_at) : null;
  return h(
    'div',
    { class: 'card-approval' },
    description(p),
    metaLine([(MODES[s.mode] || MODES.single)(s), counting ? `${s.approvals || 0} of ${needed} approved` : '', expires]),
    counting ? bar((s.approvals || 0) / Math.max(needed, 1), 'progress') : null,
    h('ul', { class: 'person-list approvers' }, s.approvers.map((uid, i) => approverRow(uid, i, p, ui, decisions))),
    deciding
      ? h('input', {
          class: 'card-input approval-comment',
          type: 'text',
          maxlength: '500',
          placeholder: 'Add a comment (optional)',
          'aria-label': 'Comment',
          value: ui.draft.comment || '',
          disabled: Boolean(ui.pending),
          dataset: { key: 'comment' },
          oninput: (e) => {
            ui.draft.comment = e.target.value;
          },
        })
      : null,
  );
}

function outcome(p, ui) {
  const s = p.state || {};
  const decisions = s.decisions || [];
  const last = decisions[decisions.length - 1];
  if ((p.status === 'approved' || p.status === 'rejected') && last) {
    const verb = p.status === 'approved' ? 'Approved' : 'Rejected';
    return `${verb} by ${byName(last.uid, ui)} at ${at(last.at)}${last.comment ? ` — “${last.comment}”` : ''}`;
  }
  if (p.status === 'withdrawn') {
    const by = (p.updated_by && p.updated_by.uid) || p.creator;
    return `Withdrawn by ${byName(by, ui)}${p.updated_at ? ` at ${at(p.updated_at)}` : ''}`;
  }
  if (p.status === 'expired') return `Expired${s.expires_at ? ` at ${at(s.expires_at)}` : ''} without a decision`;
  if (p.my_decision) {
    const waiting = (s.waiting_for || []).map((uid) => ui.name(uid));
    const mine = `You ${p.my_decision.decision === 'approve' ? 'approved' : 'rejected'} at ${at(p.my_decision.at)}`;
    return waiting.length ? `${mine} — waiting for ${waiting.join(', ')}` : mine;
  }
  if (p.outcome) return p.outcome;
  return p.unavailable_reason ? p.unavailable_reason.replace(/^./, (c) => c.toUpperCase()) : '';
}

registerCard('approval', renderApproval, {
  outcome,
  button: (action) => (action === 'withdraw' ? { minor: true } : {}),
  params: (action, p, ui) => {
    const comment = (ui.draft.comment || '').trim();
    return (action === 'approve' || action === 'reject') && comment ? { comment } : {};
  },
});
