// Attachments (docs/conversation.md, *Files and images*).
//
// Sending: chatManager.send(ImageContent | FileContent) asks provider.messageUploadTaskCallback
// for a task; UploadTask.start() posts the file's bytes to POST /file/upload?channel_id=
// &channel_type=&name= with the user token, copies the answer (url, size, width, height,
// name) into the content, sets status success and calls update(): the SDK then encodes the
// content again and sends the message. A failed upload marks the message "Not sent".
//
// Showing: a file URL answers only with the user's token, so an <img> cannot load it by
// itself; Media fetches it once with the token and hands out an object URL (cached per URL:
// a file id never names other bytes).

import { MessageTask, TaskStatus } from 'wukongimjssdk/lib/task';

export class UploadTask extends MessageTask {
  /**
   * @param message  the SDK message being sent (content: ImageContent or FileContent)
   * @param api      http.Api (user token)
   * @param onDone   (message, error|null) after the upload finished either way
   */
  constructor(message, api, onDone) {
    super(message);
    this.status = TaskStatus.wait;
    this.api = api;
    this.onDone = onDone;
  }

  start() {
    this.status = TaskStatus.processing;
    this.run();
  }

  async run() {
    const message = this.message;
    const content = message.content;
    const params = new URLSearchParams({
      channel_id: message.channel.channelID,
      channel_type: String(message.channel.channelType),
      name: content.name || 'file',
    });
    try {
      const body = await this.api.upload(`/file/upload?${params}`, content.file);
      const data = (body && body.data) || body || {};
      if (!data.url) throw new Error('the upload answer has no url');
      content.remoteUrl = String(data.url);
      if (data.name) content.name = String(data.name);
      if (data.size) content.size = Number(data.size);
      if ('width' in content && data.width) content.width = Number(data.width);
      if ('height' in content && data.height) content.height = Number(data.height);
      this.status = TaskStatus.success;
      this.onDone(message, null);
    } catch (err) {
      this.status = TaskStatus.fail;
      this.onDone(message, err);
    }
    this.update();
  }

  progress() {
    return this.status === TaskStatus.success ? 1 : 0;
  }
}

export class Media {
  constructor(api) {
    this.api = api;
    this.urls = new Map(); // file URL -> Promise<object URL>
  }

  /** An object URL of the file at `url` (fetched once with the token). */
  objectUrl(url) {
    let pending = this.urls.get(url);
    if (!pending) {
      pending = this.api.blob(url).then((blob) => URL.createObjectURL(blob));
      pending.catch(() => this.urls.delete(url)); // a later paint may try again
      this.urls.set(url, pending);
    }
    return pending;
  }

  /** Save the file at `url` as `name` (a download started from an object URL). */
  async download(url, name) {
    try {
      const href = await this.objectUrl(url);
      const a = document.createElement('a');
      a.href = href;
      a.download = name || 'file';
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      console.warn('[magpie] download failed', err);
      window.alert(`The file could not be downloaded: ${err.message || err}`);
    }
  }
}

/** Image dimensions of a File (0 × 0 when the browser cannot decode it). */
export async function imageSize(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return size;
  } catch (_err) {
    return { width: 0, height: 0 };
  }
}
