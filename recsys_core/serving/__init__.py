"""Serving a trained run over HTTP, learning from the events it receives, and replaying a dataset as a stream."""
