"""`make studies`: run the studies in experiments/studies/ and write docs/studies.md.

    python -m fcnet_cli.studies                      # all five, a few minutes on 2 cores
    python -m fcnet_cli.studies --only momentum      # one of them

Each study is a grid sweep file (the `fcnet sweep` format, read by `sweep.spec.load_sweep`)
plus a short Markdown explanation beside it. Every configuration × seed becomes a member; the
members of one layout train together as one population (`sweep.run.run_sweep`, the engine of
`fcnet sweep`), each in its own run directory under runs/studies/<stamp>/<study>/trials/.
The tables, numbers and figures of docs/studies.md are then read back from those run
directories (`analysis.compare.load_runs`), so every number on the page comes from the run
behind it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fcnet_cli.analysis.compare import RunRecord, load_runs
from fcnet_cli.engine.store.files import atomic_write_text
from fcnet_cli.events import Callback, EpochMetrics, RunStart
from fcnet_cli.studies import boundaries, dynamics
from fcnet_cli.studies import pages as study_pages
from fcnet_cli.studies.pages import Section
from fcnet_cli.sweep.load import load_sweep
from fcnet_cli.sweep.run import run_sweep

__all__ = ["STUDIES", "Study", "StudyRun", "main", "run_study", "write_page"]

# The studies are part of the source tree, not of the installed package: the default folder is
# relative to the working directory (`make studies` runs in the checkout); `--studies` names it.
STUDY_DIR = Path("experiments") / "studies"
REPRODUCE = "python -m fcnet_cli.studies"  # what `make studies` runs


@dataclass(frozen=True)
class Study:
    name: str  # <name>.md in experiments/studies/ explains it
    title: str
    analyse: Callable[[Sequence[RunRecord], Path], Section]
    parts: tuple[str, ...] = ()  # sweep file stems (default: the name); one grid sweep each

    @property
    def files(self) -> tuple[str, ...]:
        return self.parts or (self.name,)


STUDIES = (
    Study("overfitting", "Overfitting and regularization", study_pages.overfitting,
          ("overfitting_none", "overfitting_l2", "overfitting_l1")),
    Study("l1_vs_l2", "L1 vs L2: sparsity and weight norms per layer", study_pages.l1_vs_l2),
    Study("momentum", "Momentum at a fixed learning rate", dynamics.momentum),
    Study("lr_decay", "Learning-rate decay", dynamics.lr_decay,
          ("lr_decay", "lr_decay_exponential")),
    Study("boundaries", "Decision boundaries on 2-D data", boundaries.boundaries,
          ("boundaries_width", "boundaries_penalty", "boundaries_dropout")),
)


@dataclass
class StudyRun:
    study: Study
    sweep_files: list[Path]
    sweep_dir: Path  # holds one folder per sweep file
    configurations: int
    seeds: int
    populations: int
    seconds: float
    runs: list[RunRecord]
    devices: set[str]
    engine: str  # what trained the runs


class _Progress(Callback):
    """One line per population every `every` epochs (on stderr): `make studies` is a batch job.

    Also counts the populations and notes the devices they ran on, for the page.
    """

    def __init__(self, label: str, every: int = 10) -> None:
        self.label, self.every, self.epochs = label, every, 0
        self.populations, self.devices = 0, set[str]()

    def on_run_start(self, start: RunStart) -> None:
        self.epochs = start.epochs
        self.populations += 1
        self.devices.add(start.device)
        _say(f"{self.label}: {len(start.names)} members on {start.device}, "
             f"{start.n_train} training examples, {start.epochs} epochs")

    def on_epoch_end(self, metrics: list[EpochMetrics]) -> None:
        if metrics and (metrics[0].epoch % self.every == 0 or metrics[0].epoch == self.epochs):
            _say(f"{self.label}: epoch {metrics[0].epoch}/{self.epochs}, "
                 f"{len(metrics)} members training")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_study(study: Study, out_root: Path, study_dir: Path = STUDY_DIR,
              overrides: Sequence[str] = ()) -> StudyRun:
    """Run a study's grid sweeps (every configuration × seed); read their runs back.

    `overrides` are `fcnet sweep --set` items (`base.training.epochs=3`, `seeds=1`).
    """
    files = [study_dir / f"{stem}.yaml" for stem in study.files]
    sweeps = [load_sweep(f, [*overrides, f"base.output.dir={(out_root / study.name).as_posix()}"])
              for f in files]
    for f, sweep in zip(files, sweeps, strict=True):
        if sweep.spec.method != "grid":
            raise ValueError(f"{f}: studies are grid sweeps (got method {sweep.spec.method})")
    progress = _Progress(study.name)
    started = time.perf_counter()
    for sweep in sweeps:
        run_sweep(sweep, callbacks=[progress])
    engine = "`fcnet_cli.sweep.run.run_sweep` (the engine of `fcnet sweep`)"
    seconds = time.perf_counter() - started
    runs = sorted(load_runs([s.sweep_dir for s in sweeps]), key=lambda r: r.name)
    return StudyRun(study, files, out_root / study.name, sum(len(s.points) for s in sweeps),
                    min(s.spec.seeds for s in sweeps), progress.populations, seconds, runs,
                    progress.devices, engine)


def _rel(path: Path, start: Path) -> str:
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _section(n: int, done: StudyRun, docs: Path, figures: Path, command: str) -> str:
    study = done.study
    part = study.analyse(done.runs, figures)
    first = done.sweep_files[0]
    explanation = (first.parent / f"{study.name}.md").read_text(encoding="utf-8").strip()
    rels = [_rel(f, Path.cwd()) for f in done.sweep_files]
    links = ", ".join(f"[`{r}`](../{r})" for r in rels)
    runs_dir = _rel(done.sweep_dir, Path.cwd())
    lines = [
        f"## {n}. {study.title}", "", explanation, "",
        f"Sweep file{'s' if len(rels) > 1 else ''} {links}: {done.configurations} "
        f"configurations × {done.seeds} seeds = {len(done.runs)} runs, trained by "
        f"{done.engine} as {done.populations} population(s) in {done.seconds:.0f} s. "
        f"Reproduce with `{command} --only {study.name}` (a page with this study only), or "
        f"train the same sweep{'s' if len(rels) > 1 else ''} with "
        f"{', '.join(f'`fcnet sweep {r}`' for r in rels)}; this page's runs are in "
        f"`{runs_dir}` (`fcnet compare {runs_dir}` shows each configuration's mean ± std over "
        "its seeds).", "",
        part.markdown.strip(), "",
    ]
    lines += [f"![{study.title}]({_rel(fig, docs)})" for fig in part.figures]
    return "\n".join(lines) + "\n"


def write_page(done: Sequence[StudyRun], docs: Path, figures: Path, total: float,
               overrides: Sequence[str] = ()) -> Path:
    """docs/studies.md: how it was made, then one section per study."""
    import torch

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join([REPRODUCE, *(f"--set {o}" for o in overrides)])
    header = [
        "# Studies: regularization, momentum, learning-rate decay and decision boundaries, "
        "measured", "",
        f"Generated by `{command}` on {stamp}: "
        f"{len(done)} studies, {sum(len(d.runs) for d in done)} runs in {total:.0f} s "
        f"(Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, device: "
        f"{', '.join(sorted(set().union(*(d.devices for d in done))))}). Every number below "
        f"is read from the run directories of that command; rerunning it regenerates this "
        "page. Every configuration is trained with several seeds (initialization, batch "
        "order, dropout); a cell is the mean ± the standard deviation over them. A "
        "difference between two configurations is reported with its 95 % interval and the "
        "p-value of Welch's t-test, and called a finding only when p < 0.05; otherwise the "
        "text says it is within noise. \"last\" is the last epoch; test accuracy is that of "
        "the best checkpoint (by the sweep file's `early_stopping.monitor`, val_loss unless "
        "it says otherwise).", "",
        "Diagnostics behind the tables (every run's `metrics.csv`, per epoch): "
        "gap = train − validation accuracy (or validation − train loss); "
        "sparsity = fraction of a layer's weights with |w| < 1e-3; ‖W‖₂ = the L2 norm of "
        "a weight matrix (biases excluded).", "",
    ]
    body = [_section(i, d, docs, figures, command) for i, d in enumerate(done, 1)]
    page = docs / "studies.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    # atomic: a concurrent run or a reader never sees half a page
    atomic_write_text(page, "\n".join(header) + "\n" + "\n".join(body))
    return page


def _new_folder(root: Path) -> Path:
    """A fresh stamped folder under `root`: two studies runs never share (and so resume)
    each other's sweeps, even when started in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        folder = root / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"{root}: no free folder name for {stamp}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fcnet_cli.studies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=[s.name for s in STUDIES],
                        help="run these studies only (the page then has only them)")
    parser.add_argument("--studies", type=Path, default=STUDY_DIR,
                        help="folder of the study sweep files and their .md explanations "
                             "(experiments/studies of a checkout)")
    parser.add_argument("--runs", type=Path, default=Path("runs/studies"),
                        help="folder for the run directories (a new stamped folder inside)")
    parser.add_argument("--docs", type=Path, default=Path("docs"),
                        help="where studies.md and figures/ are written")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a key of every sweep file, e.g. "
                        "base.training.epochs=3 or seeds=1 (a quick check; the page says so)")
    args = parser.parse_args(argv)
    chosen = [s for s in STUDIES if not args.only or s.name in args.only]
    missing = [s.name for s in chosen
               if not all((args.studies / f"{stem}.yaml").is_file() for stem in s.files)]
    if missing:
        parser.error(f"{args.studies}: no study files for {', '.join(missing)} (run from a "
                     f"checkout of fcnet, or give --studies DIR)")
    out_root = _new_folder(args.runs)
    started = time.perf_counter()
    done = []
    for study in chosen:
        done.append(run_study(study, out_root, args.studies, args.overrides))
        _say(f"{study.name}: {len(done[-1].runs)} runs in {done[-1].seconds:.0f} s")
    page = write_page(done, args.docs, args.docs / "figures", time.perf_counter() - started,
                      args.overrides)
    _say(f"wrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
