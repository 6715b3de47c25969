"""What every command shares: the global options (accepted before the command or after it),
the settings they resolve to, the output and a client built on first use.

A command takes the :class:`Session` with ``@pass_session``::

    @group.command("show")
    @click.argument("model")
    @pass_session
    def show(session: Session, model: str) -> None:
        session.output.result(to_data(session.client.get_model(model)))
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import click

from modelregistry.cli.config import OUTPUTS, ConfigError, Settings, resolve
from modelregistry.cli.output import Output
from modelregistry.cli.progress import Transfers
from modelregistry.client import RegistryClient

__all__ = ["Session", "add_global_options", "flags_of", "global_params", "pass_session"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_FLAGS: Final = "modelregistry.flags"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and param.name is not None:
        ctx.find_root().meta.setdefault(_FLAGS, {})[param.name] = value
    return value


def flags_of(ctx: click.Context) -> dict[str, Any]:
    """The global options given so far, before or after the command (after wins)."""
    return dict(ctx.find_root().meta.get(_FLAGS, {}))


def global_params() -> list[click.Parameter]:
    """Fresh copies of the global options (the root group has them, and so does every
    command, so they may come before or after the command; after wins)."""
    common: dict[str, Any] = {"expose_value": False, "callback": _remember}
    return [
        click.Option(
            ["--address"],
            metavar="HOST:PORT",
            help="Registry address [env MODELREGISTRY_ADDRESS; default 127.0.0.1:50051].",
            **common,
        ),
        click.Option(
            ["--token"],
            metavar="TOKEN",
            help="Bearer token, a JWT or an API key [env MODELREGISTRY_TOKEN].",
            **common,
        ),
        click.Option(
            ["--ca-file"],
            type=click.Path(dir_okay=False),
            help="CA certificates (PEM) to verify the server; turns TLS on "
            "[env MODELREGISTRY_CA_FILE].",
            **common,
        ),
        click.Option(
            ["--cert-file"],
            type=click.Path(dir_okay=False),
            help="Client certificate (PEM) for mutual TLS [env MODELREGISTRY_CLIENT_CERT_FILE].",
            **common,
        ),
        click.Option(
            ["--key-file"],
            type=click.Path(dir_okay=False),
            help="Client key (PEM) for mutual TLS [env MODELREGISTRY_CLIENT_KEY_FILE].",
            **common,
        ),
        click.Option(
            ["--tls/--no-tls"],
            default=None,
            help="Force TLS on (system roots) or off [default: on with a CA or client cert].",
            **common,
        ),
        click.Option(
            ["--profile"],
            metavar="NAME",
            help="Profile of the config file [env MODELREGISTRY_PROFILE].",
            **common,
        ),
        click.Option(
            ["--output", "-o"],
            type=click.Choice(OUTPUTS),
            help="Output format [env MODELREGISTRY_OUTPUT; default table].",
            **common,
        ),
        click.Option(
            ["--timeout"],
            type=float,
            metavar="SECONDS",
            help="Deadline of each call [env MODELREGISTRY_TIMEOUT; default 30].",
            **common,
        ),
    ]


def add_global_options(command: click.Command) -> None:
    """Gives every command below ``command`` (not groups) the global options."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)
        return
    known = {p.name for p in command.params}
    command.params.extend(p for p in global_params() if p.name not in known)


class Session:
    """Settings, output and client of one invocation (each made when first needed)."""

    def __init__(self) -> None:
        self.flags: dict[str, Any] = {}
        self._settings: Settings | None = None
        self._output: Output | None = None
        self._client: RegistryClient | None = None

    @property
    def settings(self) -> Settings:
        """The resolved settings (flag > environment > profile > default)."""
        if self._settings is None:
            self._settings = resolve(self.flags, os.environ)
        return self._settings

    @property
    def output(self) -> Output:
        """The output in the chosen format."""
        if self._output is None:
            self._output = Output(self.settings.output)
            for warning in self.settings.warnings:
                self._output.note(f"warning: {warning}")
        return self._output

    def error_output(self) -> Output:
        """An output for reporting a failure, even one of the settings themselves."""
        if self._output is not None:
            return self._output
        try:
            return self.output
        except ConfigError:
            flag = self.flags.get("output")
            return Output(flag if flag in OUTPUTS else "table")

    @property
    def client(self) -> RegistryClient:
        """The registry client for these settings (built once; closed at exit)."""
        if self._client is None:
            s = self.settings
            pems = {"ca_file": s.ca_file, "cert_file": s.cert_file, "key_file": s.key_file}
            if s.tls is False:  # plaintext forced: certificates not given as flags are unused
                pems = {k: v for k, v in pems.items() if s.sources.get(k) == "flag"}
            try:
                self._client = RegistryClient(
                    s.address,
                    token=s.token,
                    root_certificates=pems.get("ca_file"),
                    client_certificate=pems.get("cert_file"),
                    client_key=pems.get("key_file"),
                    tls=s.tls,
                    timeout=s.timeout,
                )
            except (ValueError, OSError) as e:
                raise ConfigError(str(e)) from None
        return self._client

    def transfers(self) -> Transfers:
        """Progress bars on stderr if it is a terminal, else nothing."""
        return Transfers(sys.stderr)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def pass_session(f: Callable[Concatenate[Session, _P], _R]) -> Callable[_P, _R]:
    """Passes the invocation's :class:`Session` as the first argument."""

    @functools.wraps(f)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        ctx = click.get_current_context()
        session = ctx.find_object(Session)
        if session is None:  # pragma: no cover - the root group always makes one
            raise RuntimeError("no session")
        session.flags.update(flags_of(ctx))
        return f(session, *args, **kwargs)

    return wrapper
