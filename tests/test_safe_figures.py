"""compare and plot write their files the way predict does (serve/outpath.py).

Refused with exit 2, one `error:` line and nothing written: a symbolic link, a path inside
another run (or inside the run's own subfolders), a file of the run. Allowed: plot's default
figure inside the run it describes, replaced whole on a second plot, no temporaries left.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_hostile_inputs import replay, write
from typer.testing import CliRunner

from fcnet_cli.cli import app
from fcnet_cli.config import load_experiment
from fcnet_cli.engine.train.loop import train

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished one-epoch runs in one runs folder."""
    root = tmp_path_factory.mktemp("two")
    for seed in (1, 2):
        cfg = write(root, f"t{seed}.yaml", f"data: {{dataset: iris}}\nmodel: {{hidden: [4]}}\n"
                    f"training: {{epochs: 1, device: cpu, seed: {seed}}}\n"
                    f"output: {{dir: {root / 'runs'}}}\n")
        train(load_experiment(cfg))
    return root / "runs"


@pytest.fixture
def runs(trained: Path, tmp_path: Path) -> list[Path]:
    copied = Path(shutil.copytree(trained, tmp_path / "runs", symlinks=True))
    return sorted(p.parent for p in copied.rglob("summary.json"))


def test_plot_output_onto_a_symlink(runs: list[Path], tmp_path: Path) -> None:
    target = write(tmp_path, "kept.png", "precious\n")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    replay(tmp_path, ["plot", str(runs[0]), "-o", str(link)], 2, f"{link}: is a symbolic link")
    own = runs[0] / "curves.png"  # the default name, a link planted in the run
    own.symlink_to(target)
    replay(tmp_path, ["plot", str(runs[0])], 2, f"{own}: is a symbolic link")


def test_plot_output_inside_another_run_or_a_subfolder(runs: list[Path], tmp_path: Path
                                                       ) -> None:
    other = runs[1] / "mine.png"
    replay(tmp_path, ["plot", str(runs[0]), "-o", str(other)], 2,
           f"{other}: inside the run/checkpoint directory")
    deep = runs[0] / "checkpoints" / "curves.png"
    replay(tmp_path, ["plot", str(runs[0]), "-o", str(deep)], 2,
           f"{deep}: inside the run/checkpoint directory")
    config = runs[0] / "config.yaml"  # not a PNG: refused before anything else
    replay(tmp_path, ["plot", str(runs[0]), "-o", str(config)], 2, f"{config}: the figure")


def test_plot_default_figure_belongs_to_the_run(runs: list[Path]) -> None:
    run = runs[0]
    before = {p.name for p in run.iterdir()}
    assert runner.invoke(app, ["plot", str(run)]).exit_code == 0
    figure = run / "curves.png"
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert {p.name for p in run.iterdir()} == before | {"curves.png"}  # no temporaries
    figure.write_bytes(b"old")
    assert runner.invoke(app, ["plot", str(run)]).exit_code == 0  # replaced whole
    assert figure.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("option", ["--csv", "--markdown", "--plot"])
def test_compare_outputs_refused(runs: list[Path], tmp_path: Path, option: str) -> None:
    name = "t.png" if option == "--plot" else "t.txt"
    inside = runs[0] / name
    replay(tmp_path, ["compare", str(runs[0].parent.parent), option, str(inside)], 2,
           f"{inside}: inside the run/checkpoint directory")
    target = write(tmp_path, "kept" + Path(name).suffix, "precious\n")
    link = tmp_path / ("link" + Path(name).suffix)
    link.symlink_to(target)
    replay(tmp_path, ["compare", str(runs[0].parent.parent), option, str(link)], 2,
           f"{link}: is a symbolic link")


def test_compare_writes_whole_files(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.csv").write_text("old\n")
    result = runner.invoke(app, ["compare", str(runs[0].parent.parent), "--csv",
                                 str(out / "table.csv"), "--markdown", str(out / "t.md")])
    assert result.exit_code == 0, result.output
    assert (out / "table.csv").read_text().startswith("run_dir,")  # replaced (no --overwrite)
    assert sorted(p.name for p in out.iterdir()) == ["t.md", "table.csv"]


def test_a_missing_folder_is_created_but_not_inside_a_run(runs: list[Path], tmp_path: Path
                                                          ) -> None:
    nested = runs[0] / "figs" / "c.png"
    replay(tmp_path, ["plot", str(runs[0]), "-o", str(nested)], 2,
           f"{nested}: inside the run/checkpoint directory")
    out = tmp_path / "new" / "deeper" / "c.png"
    assert runner.invoke(app, ["plot", str(runs[0]), "-o", str(out)]).exit_code == 0
    assert out.read_bytes().startswith(b"\x89PNG")
