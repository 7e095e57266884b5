// The composer: Enter sends, Shift+Enter starts a new line; "+ Card" opens the menu of card
// types (cards/create.js) when the page passes `onNewCard`.
//
// Around the text box:
//   * a banner when replying to or editing a message (Esc or ✕ leaves that mode);
//   * @mention completion: typing "@" and letters lists the channel's members (and
//     "@all" for group admins); ↑/↓ pick, Enter/Tab insert "@Name ", Esc closes. The uids of
//     the names still in the text when it is sent become the message's `mention`;
//   * attachments: the 📎 button, files dropped on the chat (attachDropTarget) or pasted.

import { h, avatar, setChildren } from '../dom.js';
import { NewCardMenu } from '../cards/create.js';

/** Longest text the composer sends (the server's payload limit is far above it). */
const MAX_TEXT = 4000;
/** Members listed by the completion at most. */
const MAX_SUGGESTIONS = 8;
/** The completion's pseudo-member that mentions everybody (admins only). */
export const MENTION_ALL = '\u0000all';

export class ComposerView {
  /**
   * @param onSend  ({text, mentionUids, mentionAll, mode}) => void; mode is null, {kind:'reply',
   *                message} or {kind:'edit', message}
   * @param options onNewCard(type), onTyping(), onFiles(File[]), mentionCandidates() ->
   *                [{uid, name, role}] (MENTION_ALL as uid for "@all")
   */
  constructor(onSend, { onNewCard = null, onTyping = null, onFiles = null, mentionCandidates = null } = {}) {
    this.onSend = onSend;
    this.onTyping = onTyping;
    this.onFiles = onFiles;
    this.mentionCandidates = mentionCandidates;
    this.mode = null;
    this.mentioned = new Map(); // "@Name" -> uid, as inserted by the completion
    this.suggestions = [];
    this.picked = 0;
    this.newCard = onNewCard ? new NewCardMenu(onNewCard) : null;
    this.input = h('textarea', {
      class: 'composer-input',
      rows: '1',
      placeholder: 'Write a message…',
      maxlength: String(MAX_TEXT),
      'aria-label': 'Message',
      'aria-autocomplete': 'list',
      onkeydown: (e) => this.onKey(e),
      oninput: () => {
        this.autosize();
        this.complete();
        if (this.input.value.trim() && this.onTyping) this.onTyping();
      },
      onclick: () => this.complete(),
      onblur: () => setTimeout(() => this.closeSuggestions(), 150),
      onpaste: (e) => this.onPaste(e),
    });
    this.button = h('button', { class: 'btn btn--primary composer-send', type: 'submit', 'aria-label': 'Send' }, 'Send');
    this.fileInput = h('input', {
      type: 'file',
      multiple: true,
      hidden: true,
      class: 'composer-file-input',
      onchange: () => {
        const files = [...(this.fileInput.files || [])];
        this.fileInput.value = '';
        if (files.length) this.emitFiles(files);
      },
    });
    this.attach = onFiles
      ? h('button', { type: 'button', class: 'btn btn--ghost composer-attach', title: 'Attach a file or image', 'aria-label': 'Attach', onclick: () => this.fileInput.click() }, '📎')
      : null;
    this.bannerText = h('span', { class: 'composer-banner-text' });
    this.banner = h(
      'div',
      { class: 'composer-banner', hidden: true },
      this.bannerText,
      h('button', { type: 'button', class: 'link-button composer-banner-close', 'aria-label': 'Cancel', onclick: () => this.clearMode() }, '✕'),
    );
    this.suggestList = h('ul', { class: 'mention-list', role: 'listbox', hidden: true, 'aria-label': 'Members' });
    this.form = h(
      'form',
      {
        class: 'composer',
        onsubmit: (e) => {
          e.preventDefault();
          this.submit();
        },
      },
      this.newCard ? this.newCard.el : null,
      this.attach,
      this.fileInput,
      h('div', { class: 'composer-box' }, this.suggestList, this.input),
      this.button,
    );
    this.el = h('div', { class: 'composer-wrap' }, this.banner, this.form);
    this.setEnabled(false);
  }

  setEnabled(on) {
    this.input.disabled = !on;
    this.button.disabled = !on;
    if (this.attach) this.attach.disabled = !on;
    if (this.newCard) this.newCard.setEnabled(on);
  }

  focus() {
    this.input.focus();
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  // --- reply and edit modes -----------------------------------------------------------------

  /** Reply to `message`; `label` is "Replying to Alice: …". */
  setReply(message, label) {
    this.mode = { kind: 'reply', message };
    this.showBanner('reply', label);
    this.focus();
  }

  /** Edit `message` (its current text goes into the box). */
  setEdit(message, text, label) {
    this.mode = { kind: 'edit', message };
    this.showBanner('edit', label);
    this.input.value = text;
    this.autosize();
    this.focus();
  }

  showBanner(kind, label) {
    this.banner.hidden = false;
    this.banner.dataset.mode = kind;
    this.bannerText.textContent = label;
    this.button.textContent = kind === 'edit' ? 'Save' : 'Send';
  }

  clearMode() {
    const wasEdit = this.mode && this.mode.kind === 'edit';
    this.mode = null;
    this.banner.hidden = true;
    delete this.banner.dataset.mode;
    this.button.textContent = 'Send';
    if (wasEdit) {
      this.input.value = '';
      this.autosize();
    }
  }

  // --- sending ------------------------------------------------------------------------------

  onKey(e) {
    if (!this.suggestList.hidden && this.suggestions.length > 0) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const n = this.suggestions.length;
        this.picked = (this.picked + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
        this.paintSuggestions();
        return;
      }
      if ((e.key === 'Enter' && !e.shiftKey) || e.key === 'Tab') {
        e.preventDefault();
        this.insertMention(this.suggestions[this.picked]);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        this.closeSuggestions();
        return;
      }
    }
    if (e.key === 'Escape' && this.mode) {
      e.preventDefault();
      this.clearMode();
      return;
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || this.input.disabled) return;
    const mentionUids = [];
    let mentionAll = false;
    for (const [label, uid] of this.mentioned) {
      if (!mentionsLabel(text, label)) continue;
      if (uid === MENTION_ALL) mentionAll = true;
      else if (!mentionUids.includes(uid)) mentionUids.push(uid);
    }
    const mode = this.mode;
    this.input.value = '';
    this.mentioned.clear();
    this.closeSuggestions();
    this.autosize();
    if (mode) this.clearMode();
    this.onSend({ text, mentionUids, mentionAll, mode });
  }

  // --- attachments --------------------------------------------------------------------------

  emitFiles(files) {
    if (this.onFiles && !this.input.disabled) this.onFiles(files);
  }

  onPaste(e) {
    const files = [...((e.clipboardData && e.clipboardData.files) || [])];
    if (files.length === 0) return;
    e.preventDefault();
    this.emitFiles(files);
  }

  /** Files dropped anywhere on `el` are attached (the element shows a drop hint meanwhile). */
  attachDropTarget(el) {
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && [...(e.dataTransfer.types || [])].includes('Files');
    el.addEventListener('dragenter', (e) => {
      if (!hasFiles(e) || this.input.disabled) return;
      depth += 1;
      el.classList.add('is-dropping');
    });
    el.addEventListener('dragover', (e) => {
      if (!hasFiles(e) || this.input.disabled) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    el.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) el.classList.remove('is-dropping');
    });
    el.addEventListener('drop', (e) => {
      depth = 0;
      el.classList.remove('is-dropping');
      if (!hasFiles(e)) return;
      e.preventDefault();
      this.emitFiles([...e.dataTransfer.files]);
    });
  }

  // --- @mention completion ------------------------------------------------------------------

  /** The "@word" being typed right before the caret, or null. */
  mentionQuery() {
    const caret = this.input.selectionStart;
    if (caret !== this.input.selectionEnd) return null;
    const before = this.input.value.slice(0, caret);
    const match = /(^|\s)@([^\s@]{0,32})$/u.exec(before);
    return match ? { start: caret - match[2].length - 1, query: match[2] } : null;
  }

  complete() {
    const at = this.mentionCandidates ? this.mentionQuery() : null;
    if (!at) {
      this.closeSuggestions();
      return;
    }
    const q = at.query.toLowerCase();
    this.suggestions = this.mentionCandidates()
      .filter((c) => c.name.toLowerCase().startsWith(q) || c.uid.toLowerCase().startsWith(q))
      .slice(0, MAX_SUGGESTIONS);
    this.at = at;
    this.picked = 0;
    if (this.suggestions.length === 0) {
      this.closeSuggestions();
      return;
    }
    this.suggestList.hidden = false;
    this.paintSuggestions();
  }

  paintSuggestions() {
    setChildren(
      this.suggestList,
      this.suggestions.map((c, i) =>
        h(
          'li',
          {
            class: `mention-item${i === this.picked ? ' is-picked' : ''}`,
            role: 'option',
            'aria-selected': String(i === this.picked),
            dataset: { uid: c.uid === MENTION_ALL ? 'all' : c.uid },
            onmousedown: (e) => {
              e.preventDefault(); // keep the focus in the text box
              this.insertMention(c);
            },
          },
          c.uid === MENTION_ALL ? h('span', { class: 'avatar avatar--small mention-all' }, '@') : avatar(c.uid, c.name, 'avatar--small'),
          h('span', { class: 'mention-name' }, c.uid === MENTION_ALL ? 'all' : c.name),
          h('span', { class: 'mention-hint' }, c.uid === MENTION_ALL ? 'everybody in the group' : roleLabel(c.role) || `@${c.uid}`),
        ),
      ),
    );
  }

  insertMention(candidate) {
    if (!candidate || !this.at) return;
    const label = `@${candidate.uid === MENTION_ALL ? 'all' : candidate.name}`;
    const value = this.input.value;
    const caret = this.input.selectionStart;
    const text = `${value.slice(0, this.at.start)}${label} ${value.slice(caret)}`;
    this.input.value = text;
    const pos = this.at.start + label.length + 1;
    this.input.setSelectionRange(pos, pos);
    this.mentioned.set(label, candidate.uid);
    this.closeSuggestions();
    this.autosize();
  }

  closeSuggestions() {
    this.suggestions = [];
    this.suggestList.hidden = true;
    this.suggestList.replaceChildren();
  }
}

function roleLabel(role) {
  return role === 1 ? 'owner' : role === 2 ? 'admin' : '';
}

/** Whether `label` ("@Bob") stands in `text` as a whole word. */
function mentionsLabel(text, label) {
  let from = 0;
  for (;;) {
    const at = text.indexOf(label, from);
    if (at < 0) return false;
    const after = text.charAt(at + label.length);
    const before = at === 0 ? '' : text.charAt(at - 1);
    if ((!before || /\s/u.test(before)) && (!after || !/[\p{L}\p{N}_]/u.test(after))) return true;
    from = at + 1;
  }
}
