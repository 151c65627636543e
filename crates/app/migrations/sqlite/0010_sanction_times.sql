-- Twin of ../postgres/0010_sanction_times.sql, which corrects two PostgreSQL column types.
-- SQLite stores times the same way either way: nothing to change.
SELECT 1;
