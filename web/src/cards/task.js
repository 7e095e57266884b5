// task@1 (docs/cards.md section 3): status steps to do → in progress → done (blocked and
// declined shown on their step), the assignees with who accepted or declined, the due date
// and the overdue mark. Assignees accept / decline / block (with a reason) / unblock /
// complete; the creator reassigns (a people picker) or cancels.

import { h } from '../dom.js';
import { registerCard } from './registry.js';
import { at, byName, deadlineText, description, metaLine, peoplePicker, person } from './parts.js';

const STEPS = [
  { id: 'todo', label: 'To do' },
  { id: 'doing', label: 'In progress' },
  { id: 'done', label: 'Done' },
];
const STEP_OF = { todo: 0, declined: 0, doing: 1, blocked: 1, done: 2 };
const TERMINAL = new Set(['done', 'cancelled']);

function steps(p) {
  const current = STEP_OF[p.status] ?? -1;
  return h(
    'ol',
    { class: `task-steps${p.status === 'cancelled' ? ' is-cancelled' : ''}`, 'aria-label': 'Progress' },
    STEPS.map((step, i) => {
      let state = i < current ? 'past' : i === current ? 'current' : 'future';
      let label = step.label;
      if (i === current && p.status === 'blocked') {
        state = 'blocked';
        label = 'Blocked';
      } else if (i === current && p.status === 'declined') {
        state = 'declined';
        label = 'Declined';
      } else if (i === current && p.status === 'done') state = 'past';
      return h('li', { class: `task-step task-step--${state}`, dataset: { key: step.id, step: step.id, state } }, h('span', { class: 'task-step-dot', 'aria-hidden': 'true' }), h('span', { class: 'task-step-label' }, label));
    }),
  );
}

function assigneeRow(uid, s, p, ui) {
  let note = 'Waiting';
  let tone = 'muted';
  if (s.done_by === uid) {
    note = 'Completed';
    tone = 'good';
  } else if ((s.accepted || []).includes(uid)) {
    note = 'Accepted';
    tone = 'good';
  } else if ((s.declined || []).includes(uid)) {
    note = 'Declined';
    tone = 'bad';
  }
  return person(uid, ui, { note, tone, extraClass: 'assignee' });
}

function blockPrompt(ui) {
  const sending = ui.pending && ui.pending.action === 'block';
  return h(
    'div',
    { class: 'card-prompt', dataset: { key: 'prompt-block', prompt: 'block' } },
    h('input', {
      class: 'card-input',
      type: 'text',
      maxlength: '500',
      placeholder: 'What is blocking it? (optional)',
      'aria-label': 'Reason',
      value: ui.draft.reason || '',
      disabled: Boolean(ui.pending),
      dataset: { key: 'reason' },
      oninput: (e) => {
        ui.draft.reason = e.target.value;
      },
    }),
    h(
      'div',
      { class: 'card-prompt-actions' },
      h(
        'button',
        { type: 'button', class: `btn btn--secondary btn--small${sending ? ' is-pending' : ''}`, dataset: { submit: 'block' }, disabled: Boolean(ui.pending), onclick: () => ui.act('block', (ui.draft.reason || '').trim() ? { reason: ui.draft.reason.trim() } : {}) },
        h('span', { class: 'spinner', 'aria-hidden': 'true' }),
        h('span', {}, 'Mark blocked'),
      ),
      h('button', { type: 'button', class: 'btn btn--ghost btn--small', disabled: Boolean(ui.pending), onclick: () => closePrompt(ui) }, 'Cancel'),
    ),
  );
}

function reassignPrompt(p, ui) {
  const current = (p.state && p.state.assignees) || [];
  if (!Array.isArray(ui.draft.assignees)) ui.draft.assignees = [...current];
  const chosen = new Set(ui.draft.assignees);
  const people = ui.people.length ? ui.people : current.map((uid) => ({ uid, name: uid }));
  const sending = ui.pending && ui.pending.action === 'reassign';
  const unchanged = chosen.size === current.length && current.every((u) => chosen.has(u));
  return h(
    'div',
    { class: 'card-prompt', dataset: { key: 'prompt-reassign', prompt: 'reassign' } },
    h('p', { class: 'card-section-title' }, 'Assign to'),
    peoplePicker(
      people.map((x) => ({ ...x, label: ui.name(x.uid) })),
      chosen,
      (uid) => {
        ui.draft.assignees = chosen.has(uid) ? ui.draft.assignees.filter((u) => u !== uid) : [...ui.draft.assignees, uid];
        ui.repaint();
      },
      { disabled: Boolean(ui.pending), label: 'Assignees' },
    ),
    h(
      'div',
      { class: 'card-prompt-actions' },
      h(
        'button',
        { type: 'button', class: `btn btn--primary btn--small${sending ? ' is-pending' : ''}`, dataset: { submit: 'reassign' }, disabled: Boolean(ui.pending) || chosen.size === 0 || unchanged, onclick: () => ui.act('reassign', { assignees: [...ui.draft.assignees] }) },
        h('span', { class: 'spinner', 'aria-hidden': 'true' }),
        h('span', {}, 'Reassign'),
      ),
      h('button', { type: 'button', class: 'btn btn--ghost btn--small', disabled: Boolean(ui.pending), onclick: () => closePrompt(ui) }, 'Cancel'),
    ),
  );
}

function closePrompt(ui) {
  ui.draft.prompt = null;
  ui.repaint();
}

function renderTask(message, p, ui) {
  const s = { assignees: [], accepted: [], declined: [], ...(p.state || {}) };
  const late = Boolean(s.overdue) && !TERMINAL.has(p.status);
  const prompt = ui.draft.prompt && ui.can(ui.draft.prompt) ? ui.draft.prompt : null;
  return h(
    'div',
    { class: 'card-task' },
    description(p),
    steps(p),
    metaLine([s.due ? deadlineText('Due', s.due, { late }) : 'No due date', late ? h('span', { class: 'pill pill--bad', dataset: { overdue: '1' } }, 'Overdue') : null]),
    p.status === 'blocked' ? h('p', { class: 'task-blocked', dataset: { key: 'blocked' } }, h('strong', {}, 'Blocked'), s.blocked_reason ? ` — ${s.blocked_reason}` : '') : null,
    h('ul', { class: 'person-list assignees' }, s.assignees.map((uid) => assigneeRow(uid, s, p, ui))),
    prompt === 'block' ? blockPrompt(ui) : null,
    prompt === 'reassign' ? reassignPrompt(p, ui) : null,
  );
}

function outcome(p, ui) {
  const s = p.state || {};
  const when = p.updated_at ? ` at ${at(p.updated_at)}` : '';
  if (p.status === 'done') return `Done by ${byName(s.done_by, ui)}${when}`;
  if (p.status === 'cancelled') return `Cancelled by ${byName((p.updated_by && p.updated_by.uid) || p.creator, ui)}${when}`;
  if (p.status === 'declined') return 'Declined by every assignee';
  if (p.outcome) return p.outcome;
  return p.unavailable_reason ? p.unavailable_reason.replace(/^./, (c) => c.toUpperCase()) : '';
}

registerCard('task', renderTask, {
  outcome,
  button: (action, p, ui) => {
    if (ui.draft.prompt === action) return null; // its prompt is open in the body
    if (action === 'reassign' || action === 'cancel') return { minor: true, label: action === 'cancel' ? 'Cancel task' : 'Reassign' };
    return {};
  },
  params: (action, p, ui) => {
    if (action === 'block' || action === 'reassign') {
      ui.draft.prompt = action;
      ui.repaint();
      return null;
    }
    return {};
  },
});
