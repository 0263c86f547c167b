"""Tests of benchmarks/ab_decode.py: two source trees' decoders side by side in one process."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import encode_moving, load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ab():
    return load_benchmark("ab_decode")


def test_the_same_tree_on_both_sides_decodes_the_same_bytes_and_times_both(ab, tmp_path, capsys):
    _, _, nerv, _, _ = encode_moving(tmp_path, "g", model="latent-grid", bpp=2.0, steps=5, device="cpu")
    assert ab.main(["--old", str(ROOT), str(nerv), "--rounds", "2", "--json"]) == 0
    (rep,) = json.loads(capsys.readouterr().out)
    assert rep["same_size"] and rep["bytes"] > 11 * 32 * 24 and rep["bytes_differing"] == 0
    for side in ("old", "new"):
        r = rep[side]
        assert len(r["runs_s"]) == 2 and 0 < r["best_s"] <= r["median_s"]
        assert 0 < r["synthesis_best_s"] < r["best_s"]          # the model's forward calls, inside the decode
    assert not any(m.startswith(ab.OLD_NAME) for m in sys.modules)      # the old copy is forgotten afterwards
    assert ab.main(["--old", str(ROOT / "nervcodec"), str(nerv), "--rounds", "1"]) == 0   # the package itself
    assert "0 of" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no nervcodec package"):
        ab.main(["--old", str(tmp_path), str(nerv)])
