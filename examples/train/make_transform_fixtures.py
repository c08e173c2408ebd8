"""Fit scikit-learn transformers, export them as Inferflow transform specs, and write
reference fixtures that the TypeScript tests compare against.

The export functions (`spec_steps`, `column_transformer_spec`) are how a training script
writes a model's transformation pipeline: they read the fitted statistics (`mean_`,
`scale_`, `data_min_`, `categories_`, `statistics_`, …) from the sklearn objects and refuse
configurations the TypeScript side does not implement (a `drop`ped one-hot category,
infrequent categories, missing-value indicators, NaN as a fitted category, …) instead of
silently exporting something that would predict differently. The spec format is described
in docs/transforms.md and validated by lib/transforms/spec.ts.

Each fixture in test/fixtures/transforms/<name>.json holds one fitted pipeline:

  spec          the exported spec (what a model manifest would carry)
  input         the transform-time batch: numeric columns as numbers with null for NaN,
                categorical columns as strings with null for missing; `input_kinds` says which
  expected      sklearn's transform() output per named output column (null for NaN)
  model_columns (pipeline fixtures) the model input column order = the ColumnTransformer's
                output order, passthrough columns included

Training data include NaNs, a zero-variance column, ties for most_frequent; transform data
include NaNs, values outside the training range and categories unseen at fit time. Seeded:
regenerating gives identical files (for the same numpy/scikit-learn versions).

Run from the repository root (scikit-learn, pandas and numpy from
examples/train/requirements.txt):
  python3 examples/train/make_transform_fixtures.py
The fixtures are committed, so the TypeScript tests never need Python.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "test" / "fixtures" / "transforms"
FORMAT = "inferflow.transforms/v1"

# --------------------------------------------------------------------------------------
# Export: fitted sklearn transformer -> spec steps
# --------------------------------------------------------------------------------------


class UnsupportedTransform(ValueError):
    pass


def _floats(values, what: str) -> list[float]:
    out = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        if not math.isfinite(v):
            raise UnsupportedTransform(f"{what} contains {v} (a column that was all missing at fit time?)")
        out.append(float(v))
    return out


def _category(v):
    """A category as JSON: str stays str; numbers become int when integral (JS prints 3, not 3.0)."""
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        raise UnsupportedTransform(
            "NaN/None is a fitted category; impute missing values first, e.g. "
            "SimpleImputer(strategy='constant', fill_value='missing') before the encoder"
        )
    f = float(v)
    if not math.isfinite(f):
        raise UnsupportedTransform(f"category {v!r} is not finite")
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _categories(cats, column: str) -> list:
    values = [_category(c) for c in cats]
    kinds = {type(c) is str for c in values}
    if len(kinds) > 1:
        raise UnsupportedTransform(f"{column}: categories mix strings and numbers: {values}")
    return values


def _statistic(v):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        raise UnsupportedTransform("an imputer statistic is NaN (a column that was all missing at fit time)")
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def spec_steps(t, columns: list[str]) -> list[dict]:
    """Spec steps for one fitted transformer applied to `columns` (in the order it saw them)."""
    columns = [str(c) for c in columns]
    n = len(columns)
    if isinstance(t, StandardScaler):
        return [{
            "type": "standard_scaler",
            "columns": columns,
            "mean": _floats(t.mean_, "mean_") if t.with_mean else [0.0] * n,
            "scale": _floats(t.scale_, "scale_") if t.with_std else [1.0] * n,
        }]
    if isinstance(t, MinMaxScaler):
        lo, hi = t.feature_range
        return [{
            "type": "min_max_scaler",
            "columns": columns,
            "data_min": _floats(t.data_min_, "data_min_"),
            "data_range": _floats(t.data_range_, "data_range_"),
            "feature_range": [float(lo), float(hi)],
            "clip": bool(t.clip),
        }]
    if isinstance(t, RobustScaler):
        return [{
            "type": "robust_scaler",
            "columns": columns,
            "center": _floats(t.center_, "center_") if t.with_centering else [0.0] * n,
            "scale": _floats(t.scale_, "scale_") if t.with_scaling else [1.0] * n,
        }]
    if isinstance(t, FunctionTransformer):
        if t.func is None:  # identity (how fitted ColumnTransformers hold 'passthrough')
            return []
        if t.func is not np.log1p:
            raise UnsupportedTransform(f"FunctionTransformer({t.func!r}): only np.log1p is supported")
        return [{"type": "log1p", "columns": columns}]
    if isinstance(t, OneHotEncoder):
        if t.drop is not None:
            raise UnsupportedTransform(f"OneHotEncoder(drop={t.drop!r}) is not supported")
        if t.min_frequency is not None or t.max_categories is not None:
            raise UnsupportedTransform("OneHotEncoder with infrequent categories is not supported")
        if t.handle_unknown not in ("ignore", "error", "warn", "infrequent_if_exist"):
            raise UnsupportedTransform(f"OneHotEncoder(handle_unknown={t.handle_unknown!r})")
        handle_unknown = "error" if t.handle_unknown == "error" else "ignore"
        return [{
            "type": "one_hot",
            "column": col,
            "categories": _categories(cats, col),
            "handle_unknown": handle_unknown,
            # sklearn treats a missing value that was not a fitted category as unknown.
            "handle_missing": "as_unknown",
        } for col, cats in zip(columns, t.categories_)]
    if isinstance(t, OrdinalEncoder):
        if getattr(t, "min_frequency", None) is not None or getattr(t, "max_categories", None) is not None:
            raise UnsupportedTransform("OrdinalEncoder with infrequent categories is not supported")
        if t.handle_unknown == "use_encoded_value":
            if isinstance(t.unknown_value, float) and math.isnan(t.unknown_value):
                raise UnsupportedTransform("OrdinalEncoder(unknown_value=np.nan): use a number and impute later if needed")
            unknown_value = float(t.unknown_value)
        else:
            unknown_value = None
        return [{
            "type": "ordinal",
            "column": col,
            "categories": _categories(cats, col),
            "unknown_value": unknown_value,
            "handle_missing": "as_unknown",
        } for col, cats in zip(columns, t.categories_)]
    if isinstance(t, SimpleImputer):
        if t.add_indicator:
            raise UnsupportedTransform("SimpleImputer(add_indicator=True) is not supported")
        mv = t.missing_values
        if not (mv is None or mv is pd.NA or (isinstance(mv, float) and math.isnan(mv))):
            raise UnsupportedTransform(f"SimpleImputer(missing_values={mv!r}): only NaN/None are supported")
        if len(t.statistics_) != n:
            raise UnsupportedTransform("SimpleImputer dropped a column (all missing at fit time); use keep_empty_features=True")
        step = {
            "type": "simple_imputer",
            "columns": columns,
            "strategy": t.strategy,
            "statistics": [_statistic(v) for v in t.statistics_],
        }
        if t.strategy == "constant":
            step["fill_value"] = _statistic(t.statistics_[0])
        return [step]
    if isinstance(t, Pipeline):
        steps: list[dict] = []
        cols = columns
        for _, sub in t.steps:
            if sub in (None, "passthrough"):
                continue
            sub_steps = spec_steps(sub, cols)
            steps += sub_steps
            cols = _output_names(sub_steps, cols)
        return steps
    raise UnsupportedTransform(f"{type(t).__name__} is not supported")


def _output_names(steps: list[dict], columns: list[str]) -> list[str]:
    """Column names after `steps` (one_hot replaces a column by `<column>=<category>`)."""
    names = list(columns)
    for s in steps:
        if s["type"] == "one_hot":
            i = names.index(s["column"])
            names[i:i + 1] = [f"{s['column']}={_js_str(c)}" for c in s["categories"]]
    return names


def _js_str(v) -> str:
    """String(v) as JavaScript prints it, for the numbers _category produces."""
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    r = repr(float(v))
    return r[:-2] if r.endswith(".0") else r


def column_transformer_spec(ct: ColumnTransformer) -> tuple[dict, list[str]]:
    """(spec, model input column order) for a fitted ColumnTransformer over a DataFrame.

    Branches must transform disjoint columns: the spec transforms columns in place, so one
    column cannot be both, say, scaled and passed through."""
    steps: list[dict] = []
    order: list[str] = []
    used: dict[str, str] = {}
    for name, t, cols in ct.transformers_:
        if t == "drop" or len(cols) == 0:
            continue
        cols = [str(c) for c in (cols if not isinstance(cols[0], (int, np.integer)) else ct.feature_names_in_[cols])]
        for c in cols:
            if c in used:
                raise UnsupportedTransform(f"column {c} is used by both {used[c]} and {name}")
            used[c] = name
        branch = [] if t == "passthrough" else spec_steps(t, cols)
        steps += branch
        order += _output_names(branch, cols)
    return {"format": FORMAT, "steps": steps}, order


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

COLORS = ["red", "green", "blue", "black"]
SIZES = ["S", "M", "L", "XL"]


def make_frame(n: int, seed: int, *, unseen: bool) -> pd.DataFrame:
    """Mixed-type rows. With `unseen`, categories never seen at fit time and out-of-range numbers appear."""
    rng = np.random.default_rng(seed)

    def with_nan(x: np.ndarray, p: float) -> np.ndarray:
        x = x.astype(np.float64)
        x[rng.random(len(x)) < p] = np.nan
        return x

    amount = with_nan(np.round(np.exp(rng.normal(3.5, 1.0, n)), 2), 0.08)
    balance = with_nan(np.round(1e6 + rng.normal(0, 3.0, n), 3), 0.05)  # large offset, small spread
    tiny = np.round(rng.uniform(0, 1e-3, n), 9)
    constant = np.full(n, 5.0)
    constant[rng.random(n) < 0.05] = np.nan
    ratio = np.round(rng.uniform(-0.9, 4.0, n), 4)
    count = rng.poisson(2.0, n).astype(np.float64)  # small integers (most_frequent; the tie is in tie_frame)
    colors = list(COLORS) + (["purple", "orange"] if unseen else [])
    color = rng.choice(colors, n).astype(object)
    size = rng.choice(SIZES + (["XXL"] if unseen else []), n).astype(object)
    children = rng.integers(0, 4 + (2 if unseen else 0), n)
    is_foreign = (rng.random(n) < 0.1).astype(np.float64)
    if unseen:
        amount[:5] = [0.0, 1e5, 0.01, np.nan, 250.0]  # beyond the training range
        ratio[5:8] = [-0.999999, 1e-12, 1e3]
    for arr, p in ((color, 0.07), (size, 0.05)):
        arr[rng.random(n) < p] = np.nan
    return pd.DataFrame({
        "amount": amount,
        "balance": balance,
        "tiny": tiny,
        "constant": constant,
        "ratio": ratio,
        "count": count,
        "color": color,
        "size": size,
        "children": children,
        "is_foreign": is_foreign,
    })


def tie_frame(n: int, seed: int) -> pd.DataFrame:
    """Columns whose most frequent value is tied at fit time (sklearn keeps the smallest)."""
    rng = np.random.default_rng(seed)
    # 7 and 2 equally often (a quarter of the rows each), a tenth missing, the rest distinct
    m, q = n // 4, n // 10
    k = np.concatenate([np.full(m, 7.0), np.full(m, 2.0), np.full(q, np.nan), np.arange(n - 2 * m - q, dtype=np.float64) + 100])
    rng.shuffle(k)
    return pd.DataFrame({"k": k})


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


def jnum(v) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


def encode_input(df: pd.DataFrame, columns: list[str]) -> tuple[dict, dict]:
    data, kinds = {}, {}
    for c in columns:
        s = df[c]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            kinds[c] = "string"
            data[c] = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in s]
        else:
            kinds[c] = "numeric"
            data[c] = [jnum(v) for v in s.to_numpy(dtype=np.float64)]
    return data, kinds


def fixture(name: str, description: str, sklearn_repr: str, spec: dict, df: pd.DataFrame,
            input_columns: list[str], out_names: list[str], out: np.ndarray,
            model_columns: list[str] | None = None) -> dict:
    out = np.asarray(out, dtype=np.float64)
    assert out.shape == (len(df), len(out_names)), (name, out.shape, len(out_names))
    data, kinds = encode_input(df, input_columns)
    fx = {
        "name": name,
        "description": description,
        "sklearn": sklearn_repr,
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__},
        "rows": len(df),
        "spec": spec,
        "input_kinds": kinds,
        "input": data,
        "expected": {c: [jnum(v) for v in out[:, j]] for j, c in enumerate(out_names)},
    }
    if model_columns is not None:
        fx["model_columns"] = model_columns
    return fx


def single(name: str, description: str, t, train: pd.DataFrame, test: pd.DataFrame, columns: list[str]) -> dict:
    """Fit `t` on train[columns], export it, transform test[columns]."""
    t.fit(train[columns])
    steps = spec_steps(t, columns)
    out = t.transform(test[columns])
    out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
    names = _output_names(steps, columns)
    return fixture(name, description, repr(t), {"format": FORMAT, "steps": steps}, test, columns, names, out)


def build(rows: int, seed: int) -> list[dict]:
    train = make_frame(2 * rows, seed, unseen=False)
    test = make_frame(rows, seed + 1, unseen=True)
    num = ["amount", "balance", "tiny", "constant"]
    # Encoders are fitted without missing categories (a fitted NaN category is refused by the
    # export); missing values at transform time are then unknown to sklearn.
    train_o = train.dropna(subset=["color", "size"])
    fx = [
        single("standard_scaler", "NaN propagates; zero-variance column (scale 1); large offset", StandardScaler(), train, test, num),
        single("standard_scaler_no_mean", "with_mean=False exported as mean 0", StandardScaler(with_mean=False), train, test, num),
        single("min_max_scaler", "default range; zero-range column; values outside the fitted range", MinMaxScaler(), train, test, num),
        single("min_max_scaler_clip", "feature_range (-1, 2) with clip", MinMaxScaler(feature_range=(-1, 2), clip=True), train, test, num),
        single("robust_scaler", "median/IQR; zero-IQR column (scale 1)", RobustScaler(), train, test, num),
        single("robust_scaler_quantiles", "quantile_range (10, 90), with_centering=False", RobustScaler(quantile_range=(10.0, 90.0), with_centering=False), train, test, num),
        single("log1p", "values in (-1, 0), 0, 1e-12, large; NaN", FunctionTransformer(np.log1p), train, test, ["amount", "ratio", "tiny"]),
        single("one_hot", "unseen categories and missing values -> all zeros; integer-coded column",
               OneHotEncoder(handle_unknown="ignore", sparse_output=False), train_o, test, ["color", "size", "children"]),
    ]

    # Ordinal: automatic (sorted) categories and an explicit order.
    auto = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(train_o[["color", "children"]])
    explicit = OrdinalEncoder(categories=[SIZES], handle_unknown="use_encoded_value", unknown_value=-1).fit(train_o[["size"]])
    steps = spec_steps(auto, ["color", "children"]) + spec_steps(explicit, ["size"])
    out = np.hstack([auto.transform(test[["color", "children"]]), explicit.transform(test[["size"]])])
    fx.append(fixture("ordinal", "sorted and explicit category order; unseen and missing -> -1",
                      f"{auto!r} + {explicit!r}", {"format": FORMAT, "steps": steps}, test,
                      ["color", "children", "size"], ["color", "children", "size"], out))

    # Numeric imputers.
    imp_cols = ["amount", "balance", "constant"]
    fx.append(single("simple_imputer_mean", "nanmean per column", SimpleImputer(strategy="mean"), train, test, imp_cols))
    fx.append(single("simple_imputer_median", "nanmedian per column", SimpleImputer(strategy="median"), train, test, imp_cols))
    ties_train, ties_test = tie_frame(2 * rows, seed + 2), tie_frame(rows, seed + 3)
    mf = SimpleImputer(strategy="most_frequent").fit(ties_train[["k"]])
    counts = ties_train["k"].value_counts()
    assert counts.iloc[0] == counts.iloc[1], "the fixture must contain a tie"
    mf_num = SimpleImputer(strategy="most_frequent").fit(train[["count", "amount"]])
    steps = spec_steps(mf, ["k"]) + spec_steps(mf_num, ["count", "amount"])
    test_mf = pd.concat([ties_test.reset_index(drop=True), test[["count", "amount"]].reset_index(drop=True)], axis=1)
    out = np.hstack([mf.transform(ties_test[["k"]]), mf_num.transform(test[["count", "amount"]])])
    fx.append(fixture("simple_imputer_most_frequent", f"tie between {counts.index[0]:g} and {counts.index[1]:g}: sklearn keeps the smallest",
                      f"{mf!r} x2", {"format": FORMAT, "steps": steps}, test_mf, ["k", "count", "amount"], ["k", "count", "amount"], out))
    fx.append(single("simple_imputer_constant", "fill_value -1", SimpleImputer(strategy="constant", fill_value=-1.0), train, test, imp_cols))

    # Categorical imputers feeding encoders (strings stay strings until encoded).
    ct = ColumnTransformer([
        ("color", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))]), ["color"]),
        ("size", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                           ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), ["size"]),
    ], remainder="drop", verbose_feature_names_out=False)
    ct.fit(train)
    spec, order = column_transformer_spec(ct)
    fx.append(fixture("simple_imputer_strings", "most_frequent and constant 'missing' on strings, then encoded",
                      repr(ct), spec, test, ["color", "size"], order, ct.transform(test)))

    # A whole preprocessing pipeline as a model would have it, passthrough column included.
    ct = ColumnTransformer([
        ("amount", Pipeline([("impute", SimpleImputer(strategy="median")),
                             ("log", FunctionTransformer(np.log1p)),
                             ("scale", StandardScaler())]), ["amount"]),
        ("balance", Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", RobustScaler())]), ["balance", "constant"]),
        ("ratio", MinMaxScaler(), ["ratio", "tiny"]),
        ("color", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), ["color"]),
        ("size", OrdinalEncoder(categories=[SIZES], handle_unknown="use_encoded_value", unknown_value=-1), ["size"]),
    ], remainder="passthrough", verbose_feature_names_out=False)
    ct.fit(train[["amount", "balance", "constant", "ratio", "tiny", "color", "size", "is_foreign"]])
    spec, order = column_transformer_spec(ct)
    cols = ["amount", "balance", "constant", "ratio", "tiny", "color", "size", "is_foreign"]
    fx.append(fixture("pipeline", "ColumnTransformer: impute -> log1p -> scale, robust, min-max, impute -> one-hot, ordinal, passthrough",
                      repr(ct), spec, test, cols, order, ct.transform(test[cols]), model_columns=order))
    return fx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200, help="transform rows per fixture (fit on twice as many)")
    ap.add_argument("--seed", type=int, default=20260901)
    ap.add_argument("--out", type=pathlib.Path, default=OUT_DIR)
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for fx in build(args.rows, args.seed):
        path = args.out / f"{fx['name']}.json"
        text = json.dumps(fx, allow_nan=False, separators=(",", ":")) + "\n"
        path.write_text(text)
        total += len(text)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {fx['rows']} rows, "
              f"{len(fx['expected'])} output columns, {len(text) / 1024:.1f} KiB")
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
