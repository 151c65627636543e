-- 0005 declared the sanction times as TIMESTAMP where every other table uses TIMESTAMPTZ (the
-- application writes UTC instants). Corrected here rather than by editing 0005, which databases
-- may already have applied. The SQLite twin of this migration changes nothing (no time zones).
ALTER TABLE sanctions
    ALTER COLUMN recorded_at TYPE TIMESTAMPTZ USING recorded_at AT TIME ZONE 'UTC',
    ALTER COLUMN revoked_at TYPE TIMESTAMPTZ USING revoked_at AT TIME ZONE 'UTC';
