// Image and file messages (docs/conversation.md, *Files and images*) as SDK message contents.
//
//   image  {"type": 2, "url": "/file/<id>", "width", "height", "size", "name"}
//   file   {"type": 8, "url": "/file/<id>", "name", "size"}
//
// Both extend the SDK's MediaMessageContent, so chatManager.send() hands them to the upload
// task provider (upload.js) first and sends only after the task succeeded; `file` is the
// browser File while the message is being sent, `remoteUrl` the server's URL afterwards.

import { MediaMessageContent } from 'wukongimjssdk/lib/model';

export const IMAGE = 2;
export const FILE = 8;

function positive(v) {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

class MediaContent extends MediaMessageContent {
  constructor(file) {
    super();
    this.file = file || undefined;
    this.remoteUrl = '';
    this.name = file ? file.name || '' : '';
    this.size = file ? file.size || 0 : 0;
  }

  decodeJSON(content) {
    this.remoteUrl = typeof content.url === 'string' ? content.url : '';
    this.name = typeof content.name === 'string' ? content.name : '';
    this.size = positive(content.size);
  }

  encodeJSON() {
    return { url: this.remoteUrl || '', name: this.name || '', size: this.size || 0 };
  }
}

export class ImageContent extends MediaContent {
  constructor(file, width = 0, height = 0) {
    super(file);
    this.width = width;
    this.height = height;
  }

  get contentType() {
    return IMAGE;
  }

  get conversationDigest() {
    return '[Image]';
  }

  decodeJSON(content) {
    super.decodeJSON(content);
    this.width = positive(content.width);
    this.height = positive(content.height);
  }

  encodeJSON() {
    return { ...super.encodeJSON(), width: this.width || 0, height: this.height || 0 };
  }
}

export class FileContent extends MediaContent {
  get contentType() {
    return FILE;
  }

  get conversationDigest() {
    return `[File] ${this.name || ''}`.trim();
  }
}

/** Teach the SDK to decode image and file payloads into these classes. */
export function registerContents(sdk) {
  sdk.register(IMAGE, () => new ImageContent());
  sdk.register(FILE, () => new FileContent());
}

/** "1.2 MB" */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
