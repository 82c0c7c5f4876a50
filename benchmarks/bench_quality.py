"""Quality of fcnet's defaults against the peers a practitioner would use instead.

    python benchmarks/bench_quality.py                 # every table, 5 seeds
    python benchmarks/bench_quality.py --seeds 2 --tables iris wine

Every method sees the same stratified 80/20 split per seed (scikit-learn's
`train_test_split`, `random_state=seed`) and is scored on the same 20% (accuracy; regression:
RMSE). fcnet trains on the 80% with a minimal YAML (a `data:` section only, plus
`missing: median` where the table has empty cells): with the default rule
(engine/train/defaults.py: its ensemble of 8 seeds), with `model.ensemble: 1` (one model of
the rule) and with the constants the rule replaced (SGD lr 0.01, 20 epochs of batch 64, no
schedule, no early stopping), and is scored through `load_model` as a user would
(`--process`: as a whole `fcnet train` process). Peers: scikit-learn's default
`MLPClassifier`/`MLPRegressor` (imputed, one-hot, scaled) and `HistGradientBoosting*`;
pytabkit's RealMLP-TD and TabM-D when the `bench` extra is installed. The tables ship offline:
scikit-learn's bundled sets, statsmodels' survey tables (anes96, fair, randhie: integer codes
spelled as text, 5% of some cells emptied; with the `bench` extra) and generated tables with
text columns and missing cells (tests/messy_tables.py). Prints mean ± std per table and
method, Welch's p against the best peer, the mean rank and the wall time per fit; `--cache`
keeps finished fits so methods can run in separate invocations.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

OLD_DEFAULTS = {"optimizer": {"name": "sgd", "lr": 0.01}, "scheduler": {"name": "none"},
                "training": {"epochs": 20, "batch_size": 64}}


@dataclass
class Table:
    name: str
    frame: pl.DataFrame
    target: str
    task: str  # classification | regression
    missing: bool = False


def _sklearn_table(name: str) -> Table:
    import sklearn.datasets as ds

    load = {"iris": ds.load_iris, "wine": ds.load_wine, "breast_cancer": ds.load_breast_cancer,
            "digits": ds.load_digits, "diabetes": ds.load_diabetes}[name]
    bunch = load()
    cols = {f"x{i}": bunch.data[:, i] for i in range(bunch.data.shape[1])}
    task = "regression" if name == "diabetes" else "classification"
    target = bunch.target.astype(float if task == "regression" else int)
    return Table(name, pl.DataFrame({**cols, "label": target}), "label", task)


def _knock_out(frame: pl.DataFrame, cols: list[str], frac: float, seed: int) -> pl.DataFrame:
    """Empty `frac` of the cells of `cols` (a fixed draw): real tables have missing cells."""
    rng = np.random.default_rng(seed)
    return frame.with_columns(
        pl.when(pl.Series(rng.random(frame.height) < frac)).then(None).otherwise(pl.col(c))
        .alias(c) for c in cols)


def _statsmodels_table(name: str) -> Table:
    """Survey tables shipped with statsmodels, integer codes spelled as the text a CSV export
    would hold, with 5% of their cells emptied."""
    import statsmodels.api as sm

    df = pl.from_pandas(getattr(sm.datasets, name).load_pandas().data)
    if name == "anes96":  # 944 voters: Clinton (0) or Dole (1) in 1996
        pid = ["strong dem", "weak dem", "indep dem", "indep", "indep rep", "weak rep",
               "strong rep"]
        df = df.drop("logpopul").with_columns(
            pl.col("PID").cast(pl.Int64).map_elements(lambda v: pid[v], pl.String),
            pl.col("vote").cast(pl.Int64))
        return Table(name, _knock_out(df, ["PID", "income", "TVnews"], 0.05, 1), "vote",
                     "classification", True)
    if name == "fair":  # 6,366 marriages: any affair reported
        jobs = ["student", "farming", "white collar", "teacher", "professional", "managerial"]
        df = df.with_columns(
            (pl.col("affairs") > 0).cast(pl.Int64).alias("affair"),
            pl.col("occupation").cast(pl.Int64).map_elements(lambda v: jobs[v - 1], pl.String),
            pl.col("occupation_husb").cast(pl.Int64)
            .map_elements(lambda v: jobs[v - 1], pl.String)).drop("affairs")
        return Table(name, _knock_out(df, ["occupation", "educ", "age"], 0.05, 2), "affair",
                     "classification", True)
    if name == "randhie":  # 20,190 people: doctor visits (RAND health insurance experiment)
        return Table(name, _knock_out(df, ["lpi", "physlm"], 0.05, 3), "mdvis", "regression",
                     True)
    raise KeyError(name)


SKLEARN = ("iris", "wine", "breast_cancer", "digits", "diabetes")
STATSMODELS = ("anes96", "fair", "randhie")


def tables(names: list[str] | None) -> list[Table]:
    from messy_tables import cars, penguins

    out = [_sklearn_table(n) for n in SKLEARN if names is None or n in names]
    try:
        out += [_statsmodels_table(n) for n in STATSMODELS if names is None or n in names]
    except ImportError:
        print("statsmodels not installed: its tables are left out", file=sys.stderr)
    out += [Table("penguins", penguins(400, 7), "species", "classification", True),
            Table("cars", cars(400, 7), "mpg", "regression", True)]
    return [t for t in out if names is None or t.name in names]


def split(t: Table, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    from sklearn.model_selection import train_test_split

    y = t.frame[t.target].to_numpy()
    idx = np.arange(len(y))
    strat = y if t.task == "classification" else None
    tr, te = train_test_split(idx, test_size=0.2, random_state=seed, stratify=strat)
    return t.frame[tr.tolist()], t.frame[te.tolist()]


def score(t: Table, truth: np.ndarray, pred: np.ndarray) -> float:
    if t.task == "classification":
        return float(np.mean(truth.astype(str) == pred.astype(str)))
    return float(np.sqrt(np.mean((truth.astype(float) - pred.astype(float)) ** 2)))


# ---------------------------------------------------------------- methods


def fcnet(extra: dict) -> Callable[[Table, pl.DataFrame, pl.DataFrame, int], np.ndarray]:
    def fit_predict(t: Table, train: pl.DataFrame, test: pl.DataFrame, seed: int) -> np.ndarray:
        from fcnet_cli.config import validate_experiment
        from fcnet_cli.engine.train.loop import train as run
        from fcnet_cli.serve.model import load_model

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.csv"
            train.write_csv(path)
            data = {"dataset": "csv", "path": str(path), "target": t.target,
                    "test_fraction": 0.0, "split_seed": seed}
            if t.missing:
                data["missing"] = "median"
            raw = {**extra, "data": {**data, **extra.get("data", {})},
                   "training": {**extra.get("training", {}), "seed": seed, "device": "cpu"},
                   "output": {"dir": str(Path(tmp) / "runs"), "name": "bench"}}
            if t.task == "regression":
                raw["task"] = "regression"
            if PROCESS:
                run_dir = _train_process(raw, Path(tmp))
            else:
                result = run(validate_experiment(raw), eager_checkpoints=False)
                assert result.run_dir is not None
                run_dir = Path(result.run_dir)
            model = load_model(run_dir / "checkpoints" / "best")
            return model.predict(test.drop(t.target))
    return fit_predict


PROCESS = False  # --process: time the whole `fcnet train` process (start-up, load, save)


def _train_process(raw: dict, tmp: Path) -> Path:
    import json
    import subprocess

    import yaml

    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    fcnet_bin = Path(sys.executable).with_name("fcnet")
    out = subprocess.run([str(fcnet_bin), "train", str(path), "--json"], capture_output=True,
                         text=True, check=True)
    return Path(json.loads(out.stdout)["run_dir"])


def _sk_inputs(train: pl.DataFrame, test: pl.DataFrame, target: str, scale: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = train.drop(target)
    text = [c for c, d in features.schema.items() if d in (pl.String, pl.Boolean)]
    x_tr, x_te = features.to_pandas(), test.drop(target).to_pandas()
    num = [c for c in x_tr.columns if c not in text]
    num_steps = [SimpleImputer(strategy="median")] + ([StandardScaler()] if scale else [])
    ct = ColumnTransformer([
        ("num", make_pipeline(*num_steps), num),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
         text)])
    for c in text:
        x_tr[c], x_te[c] = x_tr[c].astype(str), x_te[c].astype(str)
    return ct.fit_transform(x_tr), ct.transform(x_te)


def sk_mlp(t: Table, train: pl.DataFrame, test: pl.DataFrame, seed: int) -> np.ndarray:
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    x_tr, x_te = _sk_inputs(train, test, t.target, scale=True)
    y = train[t.target].to_numpy()
    if t.task == "classification":
        return MLPClassifier(random_state=seed).fit(x_tr, y).predict(x_te)
    ys = StandardScaler().fit(y.reshape(-1, 1))  # as fcnet does: a standardized target
    m = MLPRegressor(random_state=seed).fit(x_tr, ys.transform(y.reshape(-1, 1)).ravel())
    return ys.inverse_transform(m.predict(x_te).reshape(-1, 1)).ravel()


def sk_hgb(t: Table, train: pl.DataFrame, test: pl.DataFrame, seed: int) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x_tr, x_te = _sk_inputs(train, test, t.target, scale=False)
    y = train[t.target].to_numpy()
    cls = HistGradientBoostingClassifier if t.task == "classification" else \
        HistGradientBoostingRegressor
    return cls(random_state=seed).fit(x_tr, y).predict(x_te)


def _pytabkit(kind: str) -> Callable[[Table, pl.DataFrame, pl.DataFrame, int], np.ndarray]:
    def fit_predict(t: Table, train: pl.DataFrame, test: pl.DataFrame, seed: int) -> np.ndarray:
        import pytabkit  # optional peer

        x_tr, x_te = _sk_inputs(train, test, t.target, scale=False)
        y = train[t.target].to_numpy()
        suffix = "Classifier" if t.task == "classification" else "Regressor"
        cls = getattr(pytabkit, f"{kind}_{suffix}")
        model = cls(random_state=seed, device="cpu", verbosity=0)
        return np.asarray(model.fit(x_tr, y).predict(x_te)).ravel()
    return fit_predict


def methods(ensemble: int = 0) -> dict[str, Callable]:
    out: dict[str, Callable] = {"fcnet (defaults)": fcnet({}),
                                "fcnet (one model)": fcnet({"model": {"ensemble": 1}}),
                                "fcnet (old constants)": fcnet(OLD_DEFAULTS),
                                "fcnet (robust)": fcnet({"data": {"normalize": "robust"}}),
                                "sklearn MLP": sk_mlp, "sklearn HGB": sk_hgb}
    if ensemble > 1:  # `model.ensemble: N` on top of the defaults
        out[f"fcnet (ensemble {ensemble})"] = fcnet({"model": {"ensemble": ensemble}})
        greedy = {"size": ensemble, "select": "greedy"}
        out[f"fcnet (greedy {ensemble})"] = fcnet({"model": {"ensemble": greedy}})
        out[f"fcnet (greedy {ensemble}, PLE)"] = fcnet(
            {"model": {"ensemble": greedy, "num_embeddings": "piecewise_linear"}})
        out[f"fcnet (shared {ensemble})"] = fcnet(
            {"model": {"ensemble": ensemble, "ensemble_kind": "shared"}})
    out["fcnet (PLE)"] = fcnet({"model": {"num_embeddings": "piecewise_linear"}})
    out["fcnet (periodic)"] = fcnet({"model": {"num_embeddings": "periodic"}})
    try:
        import pytabkit  # noqa: F401

        out["RealMLP-TD"] = _pytabkit("RealMLP_TD")
        out["TabM-D"] = _pytabkit("TabM_D")
    except ImportError:
        pass
    return out


# ---------------------------------------------------------------- report


def welch_p(a: list[float], b: list[float]) -> float:
    from scipy.stats import ttest_ind

    if np.allclose(a, a[0]) and np.allclose(b, b[0]):
        return 1.0 if math.isclose(a[0], b[0]) else 0.0
    return float(ttest_ind(a, b, equal_var=False).pvalue)


def report(results: dict[str, dict[str, list[float]]], seconds: dict[str, list[float]],
           table_list: list[Table]) -> str:
    names = list(seconds)
    ranks: dict[str, list[float]] = {m: [] for m in names}
    lines = ["| table | metric | " + " | ".join(names) + " |",
             "| --- | --- |" + " --- |" * len(names)]
    for t in table_list:
        res = results[t.name]
        sign = 1 if t.task == "classification" else -1  # larger is better after the sign
        means = {m: sign * float(np.mean(res[m])) for m in names}
        order = sorted(names, key=lambda m: -means[m])
        for m in names:
            ranks[m].append(1 + sum(means[o] > means[m] for o in names))
        cells = []
        for m in names:
            peers = [o for o in order if o != m and not o.startswith("fcnet")]
            best = peers[0] if peers else None
            p = welch_p(res[m], res[best]) if best else math.nan
            worse = best is not None and means[m] < means[best] and p < 0.05
            mark = f" (worse, p={p:.3f})" if worse else ""
            cells.append(f"{np.mean(res[m]):.3f} ± {np.std(res[m], ddof=1):.3f}{mark}")
        metric = "accuracy" if t.task == "classification" else "RMSE"
        lines.append(f"| {t.name} | {metric} | " + " | ".join(cells) + " |")
    lines.append("| mean rank | | " + " | ".join(f"{np.mean(ranks[m]):.2f}" for m in names)
                 + " |")
    lines.append("| s per fit | | " + " | ".join(f"{np.mean(seconds[m]):.2f}" for m in names)
                 + " |")
    return "\n".join(lines)


Fit = tuple[float, float]  # (score, seconds)


def _read_cache(path: Path | None) -> dict[tuple[str, str, int], Fit]:
    import json

    if path is None or not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["table"], r["method"], r["seed"]): (r["score"], r["seconds"]) for r in rows}


def _append_cache(path: Path | None, table: str, method: str, seed: int, fit: Fit) -> None:
    import json

    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps({"table": table, "method": method, "seed": seed,
                                "score": fit[0], "seconds": fit[1]}) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tables", nargs="*", default=None)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--process", action="store_true",
                    help="time fcnet as a whole `fcnet train` process")
    ap.add_argument("--cache", type=Path, default=None,
                    help="JSON-lines file of finished fits: read first, each new fit appended "
                         "(methods can run in separate invocations and be reported together)")
    ap.add_argument("--ensemble", type=int, default=0,
                    help="also fcnet with model.ensemble: N (N > 1)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # scikit-learn's convergence warnings
    global PROCESS
    PROCESS = args.process
    table_list = tables(args.tables)
    chosen = {k: v for k, v in methods(args.ensemble).items()
              if args.methods is None or k in args.methods}
    cache = _read_cache(args.cache)
    for t in table_list:
        for seed in range(args.seeds):
            train, test = split(t, seed)
            truth = test[t.target].to_numpy()
            for name, fit_predict in chosen.items():
                if (t.name, name, seed) in cache:
                    continue
                t0 = time.perf_counter()
                pred = fit_predict(t, train, test, seed)
                took = time.perf_counter() - t0
                cache[t.name, name, seed] = (score(t, truth, pred), took)
                _append_cache(args.cache, t.name, name, seed, cache[t.name, name, seed])
            print(f"{t.name} seed {seed}: " + ", ".join(
                f"{m} {cache[t.name, m, seed][0]:.3f}" for m in chosen), file=sys.stderr,
                flush=True)
    names = list(chosen) if args.methods is None else args.methods
    results = {t.name: {m: [cache[t.name, m, s][0] for s in range(args.seeds)] for m in names}
               for t in table_list}
    seconds = {m: [cache[t.name, m, s][1] for t in table_list for s in range(args.seeds)]
               for m in names}
    print(report(results, seconds, table_list))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
