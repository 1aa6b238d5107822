//! Crash safety: kill -9 the server while a client writes; every acknowledged write survives a restart.
