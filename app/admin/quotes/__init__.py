"""The broker's own price feed, pushed: PUT /api/v1/brokers/{brokerId}/quotes.

Stored and served by app.integrations.market_data."""
