"""Tests of benchmarks/run_bench.py: the generated blocks it owns in docs/benchmarks.md and its clip filter."""
from __future__ import annotations

import os

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def rb():
    return load_benchmark("run_bench")


def test_main_block_replaced_and_text_around_it_kept(rb):
    doc = f"# T\n\nintro\n\n{rb.BEGIN}\nold table\n{rb.END}\n\n## Speed\nkept\n"
    out = rb.replace_block(doc, "new table\n")
    assert out == f"# T\n\nintro\n\n{rb.BEGIN}\nnew table\n{rb.END}\n\n## Speed\nkept\n"


def test_sections_are_independent(rb):
    pb, pe = rb.markers("people")
    bb, be = rb.markers("bikes")
    assert (pb, pe) != (rb.BEGIN, rb.END) and pb != bb
    doc = f"{rb.BEGIN}\nmain\n{rb.END}\n{pb}\nP0\n{pe}\nmiddle\n{bb}\nB0\n{be}\n"
    out = rb.replace_block(doc, "B1", "bikes")
    assert out == f"{rb.BEGIN}\nmain\n{rb.END}\n{pb}\nP0\n{pe}\nmiddle\n{bb}\nB1\n{be}\n"
    out = rb.replace_block(out, "P1", "people")
    assert f"{pb}\nP1\n{pe}" in out and f"{bb}\nB1\n{be}" in out and "\nmain\n" in out


def test_missing_section_is_appended_with_a_heading(rb):
    out = rb.replace_block("# Benchmarks\n", "table", "carphone")
    begin, end = rb.markers("carphone")
    assert out == f"# Benchmarks\n\n## Rate-distortion results: carphone\n\n{begin}\ntable\n{end}\n"
    # Running again replaces rather than appends.
    assert rb.replace_block(out, "table2", "carphone").count(begin) == 1


@pytest.mark.parametrize("name", ["a b", "x-->", "../up", "bikes]"])
def test_bad_section_names_are_refused(rb, name, tmp_path, capsys):
    with pytest.raises(ValueError):
        rb.markers(name)
    (tmp_path / "a.y4m").write_bytes(b"")
    assert rb.main(["--data", str(tmp_path), "--section", name, "--no-doc"]) == 2
    assert "section name" in capsys.readouterr().err


def test_no_section_means_the_main_block(rb):
    assert rb.markers(None) == rb.markers("") == (rb.BEGIN, rb.END)


def test_clip_filter_selects_by_file_name(rb, tmp_path, capsys):
    for n in ("people.y4m", "bikes.mp4", "notes.txt"):
        (tmp_path / n).write_bytes(b"")
    assert [os.path.basename(c) for c in rb.find_clips(str(tmp_path))] == ["bikes.mp4", "people.y4m"]
    # A filter that matches nothing stops before any work, with exit status 2.
    assert rb.main(["--data", str(tmp_path), "--clip", "carphone", "--no-doc"]) == 2
    assert "no video files" in capsys.readouterr().err
