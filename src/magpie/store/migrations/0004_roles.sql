-- 0004: a member's role in a channel (0 member, 1 owner, 2 admin; magpie.domain.members).
ALTER TABLE subscribers ADD COLUMN role INTEGER NOT NULL DEFAULT 0;
