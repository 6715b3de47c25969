"""Generated stubs of modelregistry.v1."""
