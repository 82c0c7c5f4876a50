"""The studies: their sweep files, the measures they report, and a quick end-to-end run."""

import math
import re
from pathlib import Path

import pytest

from fcnet_cli.studies import pages as study_pages
from fcnet_cli.studies import run as studies
from fcnet_cli.sweep.load import load_sweep

STUDY_DIR = Path(__file__).resolve().parents[1] / "experiments" / "studies"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, points", [
    ("overfitting", 14), ("l1_vs_l2", 5), ("momentum", 7), ("lr_decay", 7)])
def test_every_study_is_a_valid_grid_sweep_with_an_explanation(name: str, points: int) -> None:
    sweep = load_sweep(STUDY_DIR / f"{name}.yaml")
    assert sweep.spec.method == "grid" and sweep.name == name
    assert len(sweep.points) == points
    assert sweep.base_exp.data.dataset == "digits"
    assert (STUDY_DIR / f"{name}.md").read_text().strip()
    assert name in {s.name for s in studies.STUDIES}


def test_the_overfitting_study_trains_on_a_small_split() -> None:
    data = load_sweep(STUDY_DIR / "overfitting.yaml").base_exp.data
    assert 1 - data.val_fraction - data.test_fraction <= 0.2


def test_momentum_study_has_the_required_points() -> None:
    sweep = load_sweep(STUDY_DIR / "momentum.yaml")
    got = {(p.params["optimizer.momentum"], p.params.get("optimizer.nesterov", False))
           for p in sweep.points}
    assert {(m, False) for m in (0.0, 0.5, 0.9, 0.99)} <= got
    assert {(m, True) for m in (0.5, 0.9, 0.99)} <= got
    assert len({sweep.experiment(p).optimizer.lr for p in sweep.points}) == 1  # fixed lr


def test_decay_study_covers_every_schedule() -> None:
    sweep = load_sweep(STUDY_DIR / "lr_decay.yaml")
    names = {sweep.experiment(p).scheduler.name for p in sweep.points}
    assert names == {"none", "step", "exponential", "cosine", "plateau"}
    assert sweep.base_exp.scheduler.monitor == "val_loss"


def test_epochs_to_threshold_and_oscillation_by_hand() -> None:
    assert study_pages.epochs_to([0.9, 0.4, 0.09, 0.2], 0.1) == 3
    assert study_pages.epochs_to([0.9, 0.4], 0.1) is None
    assert study_pages.oscillation([1.0, 0.5, 0.7, 0.4, 0.6]) == pytest.approx(0.2 + 0.2)
    assert study_pages.oscillation([3.0, 2.0, 1.0]) == 0.0
    assert study_pages.oscillation([1.0, math.nan, 0.5, 0.8]) == pytest.approx(0.3)


def test_mean_and_std_over_seeds() -> None:
    assert study_pages.ms([0.5, 0.7]) == "0.600 ± 0.141"
    assert study_pages.ms([0.5]) == "0.500"
    assert study_pages.ms([math.nan]) == "-"


def test_studies_end_to_end_on_a_tiny_budget(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    code = studies.main(["--runs", str(tmp_path / "runs"), "--docs", str(docs),
                         "--set", "base.training.epochs=2", "--set", "seeds=1",
                         "--set", "base.model.hidden=[8]",
                         "--set", "base.training.batch_size=256"])
    assert code == 0
    page = (docs / "studies.md").read_text()
    assert page.count("\n## ") == 4
    assert "--set base.training.epochs=2" in page  # the page names the command that made it
    for label in ("L1 λ=0.03 + dropout 0.5", "μ=0.99 Nesterov", "exponential γ=0.5",
                  "plateau", "Linear 0 (64→8)"):
        assert label in page, label
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert len(figures) == 4
    for rel in figures:
        data = (docs / rel).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
    # every study's runs are on disk where the page says
    for name, runs in (("overfitting", 14), ("l1_vs_l2", 5), ("momentum", 7), ("lr_decay", 7)):
        found = list((tmp_path / "runs").glob(f"*/{name}/trials/*/summary.json"))
        assert len(found) == runs, name


def test_each_studies_run_gets_its_own_folder(tmp_path: Path) -> None:
    # both within the same second
    first, second = studies._new_folder(tmp_path), studies._new_folder(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert not any(second.iterdir())
