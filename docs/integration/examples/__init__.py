"""Complete examples for the integration guides, each exercised by tests/test_integration_examples.py."""
