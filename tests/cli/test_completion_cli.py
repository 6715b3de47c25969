"""Shell completion is click's built-in one, reached through the installed script."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli, base_env


def test_bash_completion_script_and_completions(home: Path) -> None:
    cli = Cli(base_env(home))
    script = cli(env={"_MODELREGISTRY_COMPLETE": "bash_source"})
    assert script.status == 0
    assert "_modelregistry_completion" in script.stdout
    groups = cli(
        env={
            "_MODELREGISTRY_COMPLETE": "bash_complete",
            "COMP_WORDS": "modelregistry mo",
            "COMP_CWORD": "1",
        }
    )
    assert groups.stdout.split() == ["plain,models"]
    options = cli(
        env={
            "_MODELREGISTRY_COMPLETE": "bash_complete",
            "COMP_WORDS": "modelregistry models list -o ",
            "COMP_CWORD": "4",
        }
    )
    assert options.stdout.split() == ["plain,table", "plain,json", "plain,yaml"]
