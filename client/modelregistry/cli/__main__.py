"""``python -m modelregistry.cli`` runs the ``modelregistry`` command."""

from modelregistry.cli import main

main()
