"""Portfolio risk: VaR/ES family, Euler components, stress, drawdown, Monte Carlo projections.

Pure NumPy: arrays in, arrays out, no I/O and no app imports (calc-conventions.md "VaR, ES, drawdown,
stress"). Sign convention: VaR and ES are positive losses; drawdowns are negative fractions.
"""
