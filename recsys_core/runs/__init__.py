"""Run directories, atomic writes, the SQLite run index and the job launcher."""
