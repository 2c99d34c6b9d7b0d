"""The integration guides (docs/integration/*.md) and their examples."""
