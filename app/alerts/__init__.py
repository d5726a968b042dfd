"""Live account risk and alert rules (issue 17, points 2 and 3).

A layer above the calculation API: the live book is priced by the same route declarations as
/api/v1/calculate/portfolio and /var (their prepare steps fill quotes and history from the broker's chain), so a
trader's book and a posted portfolio give the same numbers.
"""
