"""Side-by-side measurements against baselines (not run by CI)."""
