"""One meaning per cell: canonical category text and missing cells, whatever the dtype."""

import polars as pl
import pytest

from fcnet_cli.engine.data.cells import fit_form, is_missing
from fcnet_cli.engine.data.encoding import UnseenCategories
from fcnet_cli.engine.data.tables import FALSE_SPELLINGS, TRUE_SPELLINGS, Column, canonical_expr


def _canon(form: str, s: pl.Series) -> list[str | None]:
    col = Column(s.name, "categorical", form=form)
    return s.to_frame().select(canonical_expr(col, s.dtype)).to_series().to_list()


@pytest.mark.parametrize("s", [
    pl.Series("c", [True, False, None]),
    pl.Series("c", ["True", "false ", ""]),
    pl.Series("c", [" YES", "No", "  "]),
    pl.Series("c", ["t", "F", None]),
    pl.Series("c", [1, 0, None]),
    pl.Series("c", [1.0, 0.0, float("nan")]),
    pl.Series("c", ["1", "0.0", None]),
])
def test_bool_form_gives_true_false_from_every_dtype(s: pl.Series) -> None:
    assert _canon("bool", s) == ["true", "false", None]


def test_bool_form_keeps_other_text_as_an_unseen_category() -> None:
    assert _canon("bool", pl.Series("c", ["unknown", "2"])) == ["unknown", "2"]
    assert _canon("bool", pl.Series("c", [2.5])) == ["2.5"]


@pytest.mark.parametrize("s", [
    pl.Series("c", [1, 3, None]),
    pl.Series("c", [1.0, 3.0, float("nan")]),
    pl.Series("c", ["1", " 3 ", ""]),
    pl.Series("c", ["1.0", "3", None]),
])
def test_int_form_gives_the_integer(s: pl.Series) -> None:
    assert _canon("int", s) == ["1", "3", None]


def test_text_form_strips_and_matches_exactly() -> None:
    assert _canon("text", pl.Series("c", [" Biscoe ", "biscoe", "", None])) == [
        "Biscoe", "biscoe", None, None]
    assert _canon("text", pl.Series("c", [True, False])) == ["true", "false"]


def test_fit_form() -> None:
    assert fit_form(pl.Series([True, False])) == "bool"
    assert fit_form(pl.Series(["Yes", "no", "Y"])) == "bool"
    assert fit_form(pl.Series([1, 2, 3])) == "int"
    assert fit_form(pl.Series([1.0, 2.0])) == "int"
    assert fit_form(pl.Series(["0", "1"])) == "int"  # as an integer column reads them
    assert fit_form(pl.Series([0.5, 2.0])) == "text"
    assert fit_form(pl.Series(["a", "1"])) == "text"
    assert set(TRUE_SPELLINGS).isdisjoint(FALSE_SPELLINGS)


def test_missing_cells() -> None:
    assert is_missing(pl.Series(["a", "", "  ", None])).to_list() == [False, True, True, True]
    assert is_missing(pl.Series([1.0, float("nan"), None])).to_list() == [False, True, True]
    assert is_missing(pl.Series([True, None])).to_list() == [False, True]


def test_unseen_categories_add_up_over_chunks() -> None:
    total = UnseenCategories()
    for values in (["a", "b"], ["b", "c", "d"]):
        chunk = UnseenCategories()
        chunk["colour"] = len(values)
        chunk.examples["colour"] = values
        total.add(chunk)
    assert total == {"colour": 5}
    assert total.message("f.csv") == ("f.csv: categories unseen in training, encoded as all "
                                      "zeros: 'colour' 'a', 'b', 'c', … (5 rows)")
