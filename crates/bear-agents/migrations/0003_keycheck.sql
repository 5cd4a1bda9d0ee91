-- A value sealed under the keyring's @workflows key by the first sealed instance: another
-- instance opens it at start, and one with a different keyring is refused there.
CREATE TABLE bear_keycheck (
    id INTEGER PRIMARY KEY,
    sealed TEXT NOT NULL
);
