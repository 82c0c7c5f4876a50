"""No behaviour change: two tiny fixed-seed runs reproduce metrics.csv values pinned earlier.

The values were computed on CPU with the engine as it stood before the package layout, the
sweep and the config loading were reworked (main at de65ba9); a refactoring that changes a
single step of training moves them far beyond the tolerance.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fcnet_cli.config import load_experiment
from fcnet_cli.engine.train.loop import train

IRIS = """\
data: {dataset: iris}
model: {hidden: [16, 8], dropout: 0.1}
loss: {label_smoothing: 0.05}
regularization: {type: l2, strength: 1.0e-3}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true}
scheduler: {name: cosine}
training: {epochs: 4, batch_size: 16, seed: 3, device: cpu}
"""

DIGITS = """\
data: {dataset: digits}
model: {hidden: [32], dropout: 0.1}
regularization: {type: l1, strength: 1.0e-4}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
scheduler: {name: step, step_size: 1, gamma: 0.5}
training: {epochs: 3, batch_size: 64, seed: 1, device: cpu}
"""

COLUMNS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "l2_norm_0",
           "l1_norm_0", "sparsity_0")
# one tuple per epoch, in COLUMNS order
GOLDEN = {
    "iris": (IRIS, 4, 0.8, [
        (1.0976197719573975, 0.3444444537162781, 1.0370290279388428, 0.800000011920929,
         0.10000000149011612, 2.4410622119903564, 17.218290328979492, 0.0),
        (0.9682777523994446, 0.7555555701255798, 0.8739038109779358, 0.7666666507720947,
         0.08535534143447876, 2.507312774658203, 17.496688842773438, 0.0),
        (0.8154193162918091, 0.7888888716697693, 0.7320670485496521, 0.7666666507720947,
         0.05000000074505806, 2.587702512741089, 17.883560180664062, 0.0),
        (0.7088377475738525, 0.855555534362793, 0.6885467171669006, 0.8333333134651184,
         0.014644660986959934, 2.616511583328247, 18.022987365722656, 0.0),
    ]),
    "digits": (DIGITS, 3, 0.9111111111111111, [
        (1.8783317804336548, 0.4113277494907379, 1.1016675233840942, 0.8194444179534912,
         0.05000000074505806, 3.825242042541504, 143.55789184570312, 0.00732421875),
        (0.7849841117858887, 0.8217270374298096, 0.4974321722984314, 0.8888888955116272,
         0.02500000037252903, 4.5394206047058105, 165.12295532226562, 0.0087890625),
        (0.4515807628631592, 0.8820798397064209, 0.37858688831329346, 0.9111111164093018,
         0.012500000186264515, 4.773181915283203, 172.10751342773438, 0.0087890625),
    ]),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_fixed_seed_run_reproduces_pinned_metrics(tmp_path: Path, name: str) -> None:
    text, best_epoch, test_accuracy, rows = GOLDEN[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    exp = load_experiment(path, [f"output.dir={(tmp_path / 'runs').as_posix()}"])
    result = train(exp)
    assert result.status == "completed"
    assert result.best_epoch == best_epoch
    assert result.test is not None and result.test.accuracy == pytest.approx(test_accuracy)
    assert result.run_dir is not None
    with open(Path(result.run_dir) / "metrics.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in got] == list(range(1, len(rows) + 1))
    for epoch, (row, want) in enumerate(zip(got, rows, strict=True), 1):
        values = tuple(float(row[c]) for c in COLUMNS)
        assert values == pytest.approx(want, rel=1e-5, abs=1e-6), (name, epoch)
