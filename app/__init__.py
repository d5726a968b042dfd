"""ForexRisk: white-label risk-calculation API for retail forex/CFD brokers."""
