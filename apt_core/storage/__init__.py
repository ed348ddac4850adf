"""Storage: the on-disk artifact cache, the run history (SQLite), where files live."""
