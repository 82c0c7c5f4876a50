"""`fcnet lr-find`: the learning-rate range test, as a ramp and as a population."""

import json
from pathlib import Path
from typing import Annotated

import typer

from fcnet_cli.cli.app import ConfigArg, DebugOpt, SetOpt, _run, app
from fcnet_cli.errors import UsageError


@app.command("lr-find")
def lr_find(
    ctx: typer.Context,
    config: ConfigArg,
    set_: SetOpt = None,
    lr_min: Annotated[float, typer.Option(
        "--min", metavar="LR", help="Smallest learning rate tried.")] = 1e-5,
    lr_max: Annotated[float, typer.Option(
        "--max", metavar="LR", help="Largest learning rate tried.")] = 10.0,
    num: Annotated[int, typer.Option(
        "--num", metavar="N", help="Population: log-spaced learning rates trained together.")] = 12,
    epochs: Annotated[int, typer.Option(
        "--epochs", metavar="N", help="Population: epochs each learning rate trains.")] = 3,
    mode: Annotated[str, typer.Option(
        "--mode", metavar="MODE", help="both, ramp (Smith's range test) or population.")] = "both",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE.png", show_default=False,
        help="Figure path (default: lr_find.png in the output folder).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Find a learning rate: loss against lr, two ways, and a ready --set to use.

    The ramp trains one network over one pass (at least 100 batch steps) while the lr grows
    exponentially from --min to --max, and suggests the lr where the smoothed loss falls
    fastest. The population trains --num log-spaced learning rates (× training.seeds seeds)
    together for --epochs epochs at a constant lr and suggests the one with the lowest
    validation loss. Writes lr_find.png and lr_find.json under runs/NAME/lr-find/.
    """
    _run(ctx, debug=debug, body=lambda: _lr_find(config, set_ or [], lr_min, lr_max, num, epochs,
                                                 mode, output))


def _lr_find(config: Path, overrides: list[str], lr_min: float, lr_max: float, num: int,
             epochs: int, mode: str, output: Path | None) -> int:
    from typing import get_args

    from fcnet_cli.config import LrFindMode, load_experiment

    if mode not in get_args(LrFindMode):
        raise UsageError(f"--mode must be one of {', '.join(get_args(LrFindMode))} (got {mode!r})")
    if output is not None and output.suffix.lower() != ".png":
        raise UsageError(f"{output}: the figure is written as PNG; give a name ending in .png")
    exp = load_experiment(config, overrides)
    from fcnet_cli.engine.train.lrfind import check_bounds

    check_bounds(lr_min, lr_max, num, epochs)
    from dataclasses import asdict

    from fcnet_cli import display
    from fcnet_cli.analysis.lrplot import plot_lr_find
    from fcnet_cli.cli.run import _signals_to
    from fcnet_cli.engine.train.lrfind import lr_find as run_lr_find
    from fcnet_cli.events import StopToken

    stop = StopToken()
    with _signals_to(stop):
        result = run_lr_find(exp, lr_min, lr_max, num, epochs, mode, stop=stop)  # type: ignore[arg-type]
    out_dir = Path(result.out_dir)
    figure = plot_lr_find(result, output or out_dir / "lr_find.png")
    (out_dir / "lr_find.json").write_text(json.dumps(
        {"suggestion": result.suggestion, "ramp": None if result.ramp is None else
         asdict(result.ramp), "population": None if result.scan is None else
         asdict(result.scan)}, indent=2), encoding="utf-8")
    out = display.make_console()
    scan = result.scan
    rows = [] if scan is None else list(zip(scan.lrs, scan.train_loss, scan.val_loss,
                                            strict=True))
    display.render_lr_find(out, rows, None if scan is None else scan.suggestion,
                           None if result.ramp is None else result.ramp.suggestion,
                           1 if scan is None else scan.seeds)
    typer.echo(f"figure: {figure}")
    if result.suggestion is None:
        typer.echo("no suggestion: every learning rate diverged or none improved the loss; "
                   "try a lower --min / --max", err=True)
        return 1
    typer.echo(f"suggested: --set optimizer.lr={result.suggestion:.3g}")
    return 0
