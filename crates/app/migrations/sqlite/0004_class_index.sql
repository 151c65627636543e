-- Class occupancy (在籍人数) is counted when filing, pulling, registering and listing classes:
-- without this index each count scans every student of the database.
CREATE INDEX students_class ON students (class_id);
