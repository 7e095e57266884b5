-- 0013: the live reactions of a message in (emoji, seq) order with their uids, for
-- reaction_summaries (docs/conversation.md, "reaction storm"); the same index as the SQLite
-- migration of the same number. The GROUP BY (message, emoji) reads it by an index-only scan
-- without a sort. Measured on 1,000 reactions of one message: 0.55 ms of execution against
-- 1.27 ms through the primary key, the heap and a sort.
CREATE INDEX message_reactions_live ON message_reactions (message_id, emoji, seq) INCLUDE (uid)
    WHERE NOT deleted;
