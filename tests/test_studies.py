"""The studies: their sweep files, the measures they report, and a quick end-to-end run."""

import math
import re
from pathlib import Path

import pytest

from fcnet_cli.studies import dynamics
from fcnet_cli.studies import pages as study_pages
from fcnet_cli.studies import run as studies
from fcnet_cli.studies.findings import contrast
from fcnet_cli.sweep.load import load_sweep

STUDY_DIR = Path(__file__).resolve().parents[1] / "experiments" / "studies"
PNG = b"\x89PNG\r\n\x1a\n"
POINTS = {"overfitting": 6, "l1_vs_l2": 5, "momentum": 7, "lr_decay": 6, "boundaries": 7}


def _sweeps(name: str) -> list:
    study = next(s for s in studies.STUDIES if s.name == name)
    return [load_sweep(STUDY_DIR / f"{stem}.yaml") for stem in study.files]


@pytest.mark.parametrize("name, points", sorted(POINTS.items()))
def test_every_study_is_grid_sweeps_with_5_seeds_and_an_explanation(name: str,
                                                                     points: int) -> None:
    sweeps = _sweeps(name)
    assert all(s.spec.method == "grid" and s.spec.seeds >= 5 for s in sweeps)
    assert sum(len(s.points) for s in sweeps) == points
    assert (STUDY_DIR / f"{name}.md").read_text().strip()


def test_the_overfitting_study_memorizes_noisy_labels_on_a_small_split() -> None:
    sweeps = _sweeps("overfitting")
    data = sweeps[0].base_exp.data
    assert 1 - data.val_fraction - data.test_fraction <= 0.2 and data.label_noise > 0
    kinds = {(e.regularization.type, e.model.dropout) for s in sweeps
             for e in map(s.experiment, s.points)}
    assert {("none", 0.0), ("none", 0.5)} <= kinds
    assert {k for k, _ in kinds} == {"none", "l1", "l2"}


def test_momentum_study_has_the_required_points() -> None:
    (sweep,) = _sweeps("momentum")
    got = {(p.params["optimizer.momentum"], p.params.get("optimizer.nesterov", False))
           for p in sweep.points}
    assert {(m, False) for m in (0.0, 0.5, 0.9, 0.99)} <= got
    assert {(m, True) for m in (0.5, 0.9, 0.99)} <= got
    assert len({sweep.experiment(p).optimizer.lr for p in sweep.points}) == 1  # fixed lr


def test_decay_study_covers_every_schedule_from_one_start_with_sane_decay() -> None:
    exps = [s.experiment(p) for s in _sweeps("lr_decay") for p in s.points]
    assert {e.scheduler.name for e in exps} == {"none", "step", "multistep", "exponential",
                                                "cosine", "plateau"}
    assert len({e.optimizer.lr for e in exps}) == 1
    for e in exps:  # none of them freezes training: the last lr is at least 0.5 % of the first
        from fcnet_cli.engine.train.optim import epoch_lr
        if e.scheduler.name not in ("plateau", "cosine"):
            end = epoch_lr(e.scheduler, e.optimizer.lr, e.training.epochs - 1, e.training.epochs)
            assert end >= 0.005 * e.optimizer.lr, e.scheduler.name
    plateau = next(e for e in exps if e.scheduler.name == "plateau")
    assert plateau.scheduler.monitor == "val_loss" and plateau.scheduler.patience <= 2


def test_epochs_to_threshold_oscillation_and_jitter_by_hand() -> None:
    assert dynamics.epochs_to([0.9, 0.4, 0.09, 0.2], 0.1) == 3
    assert dynamics.epochs_to([0.9, 0.4], 0.1) is None
    assert dynamics.oscillation([1.0, 0.5, 0.7, 0.4, 0.6]) == pytest.approx(0.2 + 0.2)
    assert dynamics.oscillation([3.0, 2.0, 1.0]) == 0.0
    assert dynamics.oscillation([1.0, math.nan, 0.5, 0.8]) == pytest.approx(0.3)


def test_mean_and_std_over_seeds() -> None:
    assert study_pages.ms([0.5, 0.7]) == "0.600 ± 0.141"
    assert study_pages.ms([0.5]) == "0.500"
    assert study_pages.ms([math.nan]) == "-"


def test_a_contrast_is_a_finding_only_below_p_005() -> None:
    base = [1.0, 2.0, 3.0, 4.0, 5.0]
    noise = contrast("x", "a", [v + 2.0 for v in base], "b", base, ".2f")
    found = contrast("x", "a", [v + 2.6 for v in base], "b", base, ".2f")
    assert noise.endswith("within noise, not a finding") and "p = 0.081" in noise
    assert found.endswith("(significant)") and "p = 0.032" in found
    assert "a 5.00 ± 1.58 vs b 3.00 ± 1.58, difference +2.00" in noise
    assert contrast("x", "a", [1.0], "b", [2.0]).endswith("(one seed: untested)")


@pytest.mark.slow
def test_studies_end_to_end_on_a_tiny_budget(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    code = studies.main(["--runs", str(tmp_path / "runs"), "--docs", str(docs),
                         "--set", "base.training.epochs=2", "--set", "seeds=2",
                         "--set", "base.training.batch_size=256"])
    assert code == 0
    page = (docs / "studies.md").read_text()
    assert page.count("\n## ") == 5
    assert "--set base.training.epochs=2" in page  # the page names the command that made it
    for label in ("L1 λ=0.01", "dropout 0.5", "μ=0.99 Nesterov", "exponential γ=0.88",
                  "multistep γ=0.2", "plateau", "Linear 0 (64→128)", "8 none", "p = "):
        assert label in page, label
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert len(figures) == 5
    for rel in figures:
        data = (docs / rel).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
    # every study's runs are on disk where the page says, 2 seeds per configuration
    for name, points in POINTS.items():
        found = list((tmp_path / "runs").glob(f"*/{name}/*/trials/*/summary.json"))
        assert len(found) == 2 * points, name


def test_each_studies_run_gets_its_own_folder(tmp_path: Path) -> None:
    # both within the same second
    first, second = studies._new_folder(tmp_path), studies._new_folder(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert not any(second.iterdir())
