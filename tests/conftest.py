"""Shared fixtures: each family lives in tests/support and is loaded here as a plugin."""

pytest_plugins = [
    "tests.support.metadata_fixtures",
    "tests.support.blob_fixtures",
]
