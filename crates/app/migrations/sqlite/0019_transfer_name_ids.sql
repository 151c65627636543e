-- PostgreSQL only (its 0019 adds the ids to the transfers' name index): SQLite's index holds
-- them already, as the rowid. Kept so that both backends number their migrations alike.
SELECT 1;
