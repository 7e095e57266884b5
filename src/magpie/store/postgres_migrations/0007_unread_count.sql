-- 0007: read receipts (docs/conversation.md): how many members (not the sender) had not read a
-- message with the receipt setting at its last read, beside readed_count.
ALTER TABLE message_ext ADD COLUMN unread_count INTEGER NOT NULL DEFAULT 0;
