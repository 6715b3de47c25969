"""The command groups and commands, in the order ``--help`` lists them.

To add a group: write ``commands/<name>.py`` with a ``click.Group`` (or a ``click.Command``),
take the :class:`~modelregistry.cli.session.Session` with ``@pass_session``, hand results to
``session.output``, and append it to ``ALL`` below. The global options are added to every
command by the root group; errors raised as ``RegistryError`` become the exit status.
"""

from __future__ import annotations

import click

from modelregistry.cli.commands.admin import config_group, whoami
from modelregistry.cli.commands.aliases import aliases
from modelregistry.cli.commands.cache import cache
from modelregistry.cli.commands.events import events
from modelregistry.cli.commands.files import files
from modelregistry.cli.commands.models import models
from modelregistry.cli.commands.transfer import pull, push
from modelregistry.cli.commands.versions import versions

__all__ = ["ALL"]

ALL: list[click.Command] = [
    push,
    pull,
    models,
    versions,
    aliases,
    files,
    events,
    cache,
    config_group,
    whoami,
]
