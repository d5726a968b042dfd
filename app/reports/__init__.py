"""Compliance reports: requested over the API, built by a job (CSV and PDF), stored in app.storage."""
