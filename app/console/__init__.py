"""The broker admin console at /admin: static files served by the API; the pages call the public API only."""
