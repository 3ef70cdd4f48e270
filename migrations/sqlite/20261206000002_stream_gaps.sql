-- How many times a deletion or a retention run removed events after a
-- stream's cursor: a holder that sees it change stops delivering from the
-- events it kept in memory (they may be among the removed).
ALTER TABLE streams ADD COLUMN gaps INTEGER NOT NULL DEFAULT 0;
