"""The pure calculation engine: NumPy and the standard library only, no I/O, nothing from the rest of app.

Arrays (or plain values) in, arrays out; every explain step sits next to the arithmetic it explains."""
