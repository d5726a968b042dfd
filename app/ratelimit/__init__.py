"""Tier rate limits: GCRA buckets in Redis leased to workers, with per-worker local buckets when Redis is down."""
