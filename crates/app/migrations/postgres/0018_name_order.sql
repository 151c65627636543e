-- Name prefixes on PostgreSQL (issue 6). A `LIKE $1` cannot use a text_pattern_ops index once
-- PostgreSQL plans the statement generically (after five runs), and that index cannot give the
-- names' order either: about 1 s for a surname among a million students. Indexes in the "C"
-- collation serve both a range bound by parameters (the prefix, and the prefix followed by
-- U+10FFFF) and `ORDER BY name COLLATE "C", region_code, school_id, id`: code-point order, the
-- order SQLite gives (whose index holds the id as its rowid).
DROP INDEX students_name_pattern;
CREATE INDEX students_name_c ON students (name COLLATE "C", region_code, school_id, id);
DROP INDEX transfers_name;
CREATE INDEX transfers_name ON transfers (student_name COLLATE "C", to_region, from_region);
