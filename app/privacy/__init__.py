"""GDPR: what the service holds about a person (export) and its erasure (app.privacy.service)."""
