"""Retention: stored calculations 2 years, the audit log 7 years; purged by a daily job (app.retention.tasks)."""
