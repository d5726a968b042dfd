"""Daily price history per symbol: providers (vendors, shipped development data), storage, refresh."""
