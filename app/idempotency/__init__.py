"""Idempotency-Key: the first response to a (broker, key) is replayed for 24 h; see middleware.py."""
