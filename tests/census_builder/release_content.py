"""Read a whole (small) release into plain, comparable Python objects."""

from __future__ import annotations

from typing import Any

import pandas as pd
import tiledbsoma as soma


def _frame(df: soma.DataFrame) -> pd.DataFrame:
    out: pd.DataFrame = df.read().concat().to_pandas().sort_values("soma_joinid").reset_index(drop=True)
    return out


def _coo(arr: soma.SparseNDArray) -> pd.DataFrame:
    t: pd.DataFrame = arr.read().tables().concat().to_pandas()
    return t.sort_values(["soma_dim_0", "soma_dim_1"]).reset_index(drop=True)


def release_content(uri: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    census: Any
    with soma.open(uri) as census:
        for name in census["census_info"]:
            df = _frame(census["census_info"][name])
            if name == "summary":
                df = df[df.label != "census_build_date"].reset_index(drop=True)
            out[f"census_info/{name}"] = df
        for org in census["census_data"]:
            exp = census["census_data"][org]
            out[f"{org}/obs"] = _frame(exp.obs)
            rna = exp.ms["RNA"]
            out[f"{org}/var"] = _frame(rna.var)
            for layer in rna.X:
                out[f"{org}/X/{layer}"] = _coo(rna.X[layer])
            out[f"{org}/presence"] = _coo(rna["feature_dataset_presence_matrix"])
    return out


def assert_same_content(a: str, b: str) -> None:
    ca, cb = release_content(a), release_content(b)
    assert ca.keys() == cb.keys()
    for k in ca:
        pd.testing.assert_frame_equal(ca[k], cb[k], check_exact=True, obj=k)
