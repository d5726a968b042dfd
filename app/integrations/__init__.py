"""Vendors behind small interfaces (market data, webhooks): each package owns its HTTP adapters."""
