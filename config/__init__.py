"""Parley: a self-hosted LLM chat bot for Discord with a web dashboard."""

__version__ = "0.1.0"
