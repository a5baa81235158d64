-- Login attempts counted per account and per address (see `throttle`).
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    last INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
) WITHOUT ROWID;
