"""Where generated files go (reports): the local data directory by default, S3-compatible storage in production."""
