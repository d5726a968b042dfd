"""Market quotes for calculations: providers behind one interface (quotes.py), a fallback chain per broker
with staleness rules and a two-level quote cache (service.py), the broker's own pushed feed (broker_feed.py),
two vendor REST adapters (oanda.py, tradermade.py) and a dated development snapshot (snapshot.py).

History / OHLC lives beside it in `history/` (another package)."""
