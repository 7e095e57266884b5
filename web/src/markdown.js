// Message text as Markdown, rendered safely: `marked` (GitHub-flavoured, line breaks kept)
// turns the text into HTML, and DOMPurify keeps only a short list of formatting tags.
//
// Two rules on top of the sanitiser:
//   * HTML typed by a person is text, never markup: marked's raw-HTML tokens are escaped
//     before DOMPurify sees them (so "<b>" shows as "<b>", as in every chat client).
//   * Links open in a new tab without an opener or a referrer, and only http(s)/mailto links
//     are kept; a bare URL in the text becomes a link (GFM autolinks). Markdown images are
//     not shown (their address would be fetched from the reader's browser): their text is.

import { Marked } from 'marked';
import DOMPurify from 'dompurify';

/** Tags a message may contain after rendering; everything else is dropped (its text kept). */
const ALLOWED_TAGS = ['a', 'b', 'strong', 'i', 'em', 'del', 's', 'code', 'pre', 'blockquote', 'p', 'br', 'ul', 'ol', 'li', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'span'];
const ALLOWED_ATTR = ['href', 'title', 'target', 'rel', 'start', 'class'];
const SAFE_URL = /^(?:https?:|mailto:)/i;
/** Longest text rendered as Markdown; longer texts are shown plain (bounded work per message). */
const MAX_MARKDOWN = 20000;

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html(token) {
      return escapeHtml(token.text ?? token.raw ?? '');
    },
    image(token) {
      return escapeHtml(token.text || token.href || '');
    },
  },
});

let purifier = null;

function sanitizer() {
  if (purifier) return purifier;
  purifier = DOMPurify(window);
  purifier.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName !== 'A') return;
    const href = node.getAttribute('href') || '';
    if (!SAFE_URL.test(href)) {
      node.removeAttribute('href');
      return;
    }
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  });
  return purifier;
}

/** Sanitised HTML of `text` rendered as Markdown (a string safe to assign to innerHTML). */
export function markdownHtml(text) {
  const source = String(text ?? '');
  const html = source.length > MAX_MARKDOWN ? `<p>${escapeHtml(source)}</p>` : marked.parse(source);
  return sanitizer().sanitize(html, { ALLOWED_TAGS, ALLOWED_ATTR, ALLOW_DATA_ATTR: false });
}

/** Fill `el` with `text` rendered as Markdown (only when the text changed). */
export function renderMarkdown(el, text) {
  if (el.__markdown === text) return;
  el.__markdown = text;
  el.innerHTML = markdownHtml(text);
}
