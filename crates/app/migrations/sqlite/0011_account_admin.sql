-- Accounts (issue 7 item 5, continued): TOTP required by role unless exempt, accounts disabled by
-- the system administrator. TOTP secrets are encrypted at rest from now on (`enc1:` prefix, by
-- the application with the operator's key); plaintext ones are encrypted when the server starts.
ALTER TABLE users ADD COLUMN totp_exempt BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP;

-- The demo dataset keeps API.md's login (password only): its accounts are exempt. The demo seed
-- gives every demo account one and the same argon2 hash (one salt); an account made any other
-- way has a salt of its own, so only the demo's accounts share a hash.
UPDATE users SET totp_exempt = TRUE
WHERE password_hash IN (SELECT password_hash FROM users GROUP BY password_hash HAVING COUNT(*) > 1);
