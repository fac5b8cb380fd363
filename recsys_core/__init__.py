"""RecTune core library."""
