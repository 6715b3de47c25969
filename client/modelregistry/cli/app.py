"""The root ``modelregistry`` group, its command groups, and how a run ends: one exit status
per class of failure (:mod:`modelregistry.cli.exits`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from modelregistry.cli import commands
from modelregistry.cli.config import ConfigError
from modelregistry.cli.exits import ExitCode, exit_code
from modelregistry.cli.session import Session, add_global_options, flags_of, global_params
from modelregistry.client import RegistryError

__all__ = ["cli", "run"]

_HELP = """Command line of the model registry.

Settings come from flags, then MODELREGISTRY_* variables, then the profile of the config file
(~/.config/modelregistry/config.toml, or $MODELREGISTRY_CONFIG), then defaults. The global
options go before or after the command. Exit status: 0 ok, 1 other failure, 2 invalid argument,
3 not found, 4 permission or unauthenticated, 5 unavailable (retry), 6 conflict (already exists,
failed precondition, aborted), 130 interrupted.
"""


class _Ordered(click.Group):
    """Lists its commands in the order they were added (``commands.ALL``), everyday first."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=_Ordered,
    name="modelregistry",
    help=_HELP,
    params=global_params(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def cli() -> None:
    pass


for _command in commands.ALL:
    cli.add_command(_command)
add_global_options(cli)


def _error_data(e: RegistryError) -> dict[str, Any]:
    return {
        "code": e.code.name,
        "exit_code": int(exit_code(e.code)),
        "message": e.message,
        "reason": e.reason,
        "metadata": dict(sorted(e.metadata.items())),
        "field_violations": [{"field": f, "description": d} for f, d in e.field_violations],
    }


def _local_error(code: str, status: int, message: str) -> dict[str, Any]:
    """A failure found before or without a call, in the same shape as a call's error."""
    return {
        "code": code,
        "exit_code": status,
        "message": message,
        "reason": None,
        "metadata": {},
        "field_violations": [],
    }


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line and exit with its status."""
    session = Session()
    status: int
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="modelregistry",
            standalone_mode=False,
            obj=session,
        )
        status = result if isinstance(result, int) else 0
    except click.ClickException as e:
        context = getattr(e, "ctx", None)  # a usage error knows the options parsed so far
        if isinstance(context, click.Context):
            session.flags.update(flags_of(context))
        output = session.error_output()
        if output.format == "table":
            e.show()
        else:
            code = "INVALID_ARGUMENT" if e.exit_code == ExitCode.INVALID_ARGUMENT else "LOCAL"
            output.error(
                _local_error(code, e.exit_code, e.format_message()),
                e.format_message(),
            )
        status = e.exit_code
    except click.Abort:
        status = ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        status = ExitCode.INTERRUPTED
    except ConfigError as e:
        session.error_output().error(_local_error("INVALID_ARGUMENT", 2, str(e)), f"error: {e}")
        status = ExitCode.INVALID_ARGUMENT
    except RegistryError as e:
        session.error_output().error(_error_data(e), f"error: {e}")
        status = exit_code(e.code)
    except BrokenPipeError:
        status = ExitCode.FAILURE
    except OSError as e:
        session.error_output().error(_local_error("LOCAL", 1, str(e)), f"error: {e}")
        status = ExitCode.FAILURE
    finally:
        session.close()
    sys.exit(int(status))
