"""Development and test only: a Stripe-compatible local server.

Two processes, both on loopback ports chosen free at start, both stopped when their parent goes:

- **localstripe** (PyPI, GPL-3.0, a dev dependency; run as its own process, never imported by the app):
  customers, payment methods, products, plans, subscriptions, invoices, events.
- **the double** (`double.py`, ours): what localstripe lacks (Prices, Checkout Sessions, Billing Portal
  sessions, Billing Meters and meter events), built from Stripe's API reference with each request's shape
  checked; every other path is passed through to localstripe. The SDK's api_base points at the double.

`process.LocalStripe` starts and stops the pair. Production never runs it (`STRIPE_API_KEY` set: Stripe).
"""
