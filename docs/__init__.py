"""Parley's documentation; the integration guides' examples are importable so that tests can run them."""
