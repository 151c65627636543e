-- PostgreSQL only (its 0018 puts the name indexes in the "C" collation): SQLite compares text
-- bytewise already, so its name indexes serve prefix ranges and the names' order as they are.
-- Kept so that both backends number their migrations alike.
SELECT 1;
