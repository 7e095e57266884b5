-- 0013: the live reactions of a message in (emoji, seq) order with their uids, for
-- reaction_summaries (docs/conversation.md, "reaction storm"): its GROUP BY (message, emoji)
-- reads this index alone, in order, without a sort, and group_concat meets each emoji's
-- uids in seq order. Measured on 1,000 reactions of one message: 0.27 ms of SQLite CPU
-- against 0.92 ms through the primary key, the table and two sorts.
CREATE INDEX message_reactions_live ON message_reactions (message_id, emoji, seq, uid)
    WHERE deleted = 0;
