"""Help text and usage errors: readable placeholders, one `error:` line, the same exit code
table on every command, shell completion."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.cli.group import EXIT_CODE_HELP

runner = CliRunner()
COMMANDS = sorted(app.registered_commands and
                  {c.name or c.callback.__name__.rstrip("_")  # type: ignore[union-attr]
                   for c in app.registered_commands})


def test_every_command_is_listed() -> None:
    assert {"train", "eval", "sweep", "compare", "plot", "validate", "schema"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_placeholders_are_readable(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    for ugly in ("{", "<list", "range>", "<path>", "<int>", "<str>", "<float>"):
        assert ugly not in text, (ugly, text)
    assert " ".join(EXIT_CODE_HELP.split()) in " ".join(text.split())
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: fcnet {command} [OPTIONS]")
    assert usage == usage.replace(usage.split("]", 1)[1], usage.split("]", 1)[1].upper())


@pytest.mark.parametrize(("args", "needle"), [
    (["train", "--bogus"], "fcnet train: no such option: --bogus"),
    (["sweep"], "fcnet sweep: missing argument 'CONFIG'"),
    (["eval"], "fcnet eval: missing argument 'CHECKPOINT'"),
    (["sweep", "x.yaml", "--top", "-1"], "fcnet sweep: invalid value for '--top'"),
    (["eval", "ckpt", "--split", "nope"], "fcnet eval: invalid value for '--split'"),
    (["trian"], "no such command 'trian'"),
])
def test_usage_errors_are_one_error_line_with_exit_2(args: list[str], needle: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert needle in lines[0]
    assert lines[0].endswith("--help)")


def test_no_arguments_prints_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "Usage: fcnet [OPTIONS] COMMAND" in result.output


def test_shell_completion_is_offered_and_completes_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="fcnet")
    assert script.exit_code == 0 and "complete -o default -F _fcnet_completion fcnet" \
        in script.stdout
    completed = runner.invoke(app, [], prog_name="fcnet", env={
        "_FCNET_COMPLETE": "complete_bash", "COMP_WORDS": "fcnet sw", "COMP_CWORD": "1"})
    assert completed.stdout.split() == ["sweep"]
