"""Leaves every layer uses: exception types, one-line reports, value and resource checks, safe
file opening, the safety rules and the version gates. Nothing here imports from above."""
