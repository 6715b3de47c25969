"""Driven adapters that reach out of the server (webhook deliveries over HTTP)."""
