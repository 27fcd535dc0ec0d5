"""`make bench` fails when the pack's decode is slow next to the floors or the naive way.

The measurements here are made up, except in the last test, which runs the decode worker on a tiny
clip and checks only what it counts, never how long it took; the benchmark itself runs only under
`make bench`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"
GB = 10 ** 9
IMAGES = [{"size": "1x1", "format": "PNG", "sent": "1x1", "passes": 1, "pack_s": 0.0, "pack_bytes": 1,
           "b64_bytes": 4, "png_s": 0.0, "png_bytes": 1, "ok": True}]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def measured(pack_wall: float, *, decode_floor: float = 1.0, memory_floor: float = 2.0, naive: float = 40.0,
             pack_growth: float = 1.01) -> dict:
    """A 10 s clip's best runs: every method, all frames and selective."""
    out, before = 6 * GB, GB // 4
    full = {
        "pack": {"wall": pack_wall, "peak": before + pack_growth * out, "out_bytes": out},
        "naive": {"wall": naive, "peak": before + 3 * out, "out_bytes": out},
        "decode-floor": {"wall": decode_floor, "peak": before, "out_bytes": 0},
        "memory-floor": {"wall": memory_floor, "peak": before + out, "out_bytes": out},
        "both-floors": {"wall": decode_floor + memory_floor, "peak": before + out, "out_bytes": out},
    }
    for row in full.values():
        row.update(rss_before=before, frames=240)
    selective = {name: {**row, "wall": row["wall"] / 10, "peak": before + (row["peak"] - before) / 20,
                        "out_bytes": row["out_bytes"] / 20} for name, row in full.items()}
    return {**{(name, "full"): row for name, row in full.items()},
            **{(name, "selective"): row for name, row in selective.items()}}


def measured_long(pack_wall: float, *, pack_growth: float = 1.01) -> dict:
    """A 15 s clip's best runs as make bench takes them (all frames, no naive): 1.5x the 10 s clip's."""
    rows = {}
    for (method, mode), row in measured(pack_wall / 1.5, pack_growth=pack_growth).items():
        if method != "naive" and mode == "full":
            grown = (row["peak"] - row["rss_before"]) * 1.5
            rows[(method, mode)] = {**row, "frames": 360, "wall": row["wall"] * 1.5,
                                    "peak": row["rss_before"] + grown, "out_bytes": row["out_bytes"] * 1.5}
    return rows


def failing(bench, best) -> list[str]:
    return [name for name, value, limit, _ in bench.decode_targets(best) if value > limit]


def ten(bench, best) -> dict:
    return {bench.CASES[0]: best}


def test_a_pack_close_to_the_larger_floor_meets_every_target(bench):
    assert failing(bench, measured(2.9)) == []


def test_the_pack_is_held_to_the_larger_of_the_two_floors(bench):
    # 3.1 s is within 1.5x the decode floor alone, not within 1.5x the memory floor.
    assert failing(bench, measured(3.1, decode_floor=2.5, memory_floor=1.0)) == []
    assert failing(bench, measured(3.1, decode_floor=1.0, memory_floor=2.0)) == [
        "full decode wall <= 1.5x the larger floor"]


def test_slow_against_naive_or_heavy_on_memory_fails(bench):
    assert "full decode wall <= 0.10x naive" in failing(bench, measured(2.9, naive=25.0))
    assert failing(bench, measured(2.9, pack_growth=1.08)) == [
        "full decode peak above pre-decode RSS <= 1.05x output bytes"]


def test_a_missed_target_makes_the_run_fail(bench, capsys):
    assert bench.report(ten(bench, measured(2.9)), IMAGES, 1) is True
    assert bench.report(ten(bench, measured(3.1)), IMAGES, 1) is False
    assert "| full decode wall <= 1.5x the larger floor | 1.550 | NO |" in capsys.readouterr().out


def test_a_target_below_the_floor_itself_is_shown_missed_but_does_not_fail_the_run(bench, capsys):
    """Naive 20 s and a 2.7 s memory floor: 0.10x naive is 2 s, less than the floor alone takes,
    so no decoder can meet it here. The run still fails if the pack falls behind the floors."""
    assert bench.report(ten(bench, measured(3.8, decode_floor=2.4, memory_floor=2.7, naive=20.0)), IMAGES, 1) is True
    out = capsys.readouterr().out
    assert "| full decode wall <= 0.10x naive | 0.190 | NO (unreachable here: the larger floor alone is 0.135) |" in out
    assert bench.report(ten(bench, measured(4.2, decode_floor=2.4, memory_floor=2.7, naive=20.0)), IMAGES, 1) is False
    # Where the floor leaves room, the naive target counts as before.
    assert bench.report(ten(bench, measured(2.9, naive=25.0)), IMAGES, 1) is False


def test_the_15_s_clip_is_held_to_the_floors_and_its_own_output_size(bench):
    # No naive run and no selective run on it: only the targets against what was measured.
    assert [name for name, *_ in bench.decode_targets(measured_long(4.3))] == [
        "full decode wall <= 1.5x the larger floor", "full decode peak above pre-decode RSS <= 1.05x output bytes"]
    assert failing(bench, measured_long(4.3)) == []
    assert failing(bench, measured_long(4.6)) == ["full decode wall <= 1.5x the larger floor"]
    assert failing(bench, measured_long(4.3, pack_growth=1.08)) == [
        "full decode peak above pre-decode RSS <= 1.05x output bytes"]


def test_the_15_s_clip_has_its_own_tables_and_targets_and_can_fail_the_run(bench, capsys):
    ten_s, fifteen_s = bench.CASES
    assert (ten_s.seconds, fifteen_s.seconds) == (10, 15)
    assert "naive" in ten_s.methods and "naive" not in fifteen_s.methods  # it would not fit in 24 GiB
    assert bench.report({ten_s: measured(2.9), fifteen_s: measured_long(4.3)}, IMAGES, 1) is True
    out = capsys.readouterr().out
    assert "| decode (15 s 1920x1080 24 fps H.264) | method |" in out
    assert "| all frames | pack | 360 | 4.30 |" in out
    assert "| ratio (15 s) | all frames |\n|---|---|\n| pack/larger floor wall | 1.43x |\n" in out
    assert "| pack/memory-floor peak RSS | 1.01x |" in out
    assert out.count("pack/naive wall") == 1  # the 10 s table's
    assert fifteen_s.left_out in out
    assert "| 15 s | full decode wall <= 1.5x the larger floor | 1.433 | yes |" in out
    assert bench.report({ten_s: measured(2.9), fifteen_s: measured_long(4.6)}, IMAGES, 1) is False
    assert "| 15 s | full decode wall <= 1.5x the larger floor | 1.533 | NO |" in capsys.readouterr().out


def test_each_clip_keeps_its_fastest_runs_and_each_round_starts_with_another_method(bench, monkeypatch):
    calls = []

    def fake_worker(method, mode, clip):
        calls.append((clip, mode, method))
        return {"call": len(calls) - 1, "wall": 10.0 - len(calls) / 10, "peak": 0}  # later runs are faster

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    ten_s, fifteen_s = bench.CASES
    best = bench.bench_decode({ten_s: "10s.mp4", fifteen_s: "15s.mp4"}, repeat=2)
    assert [c for c in calls if c[0] == "15s.mp4"] == [
        ("15s.mp4", "full", m) for m in ("pack", "decode-floor", "memory-floor", "both-floors",
                                         "decode-floor", "memory-floor", "both-floors", "pack")]
    assert [m for c, mode, m in calls if c == "10s.mp4" and mode == "selective"][::5] == ["pack", "naive"]
    assert sorted(best[fifteen_s]) == sorted((m, "full") for m in fifteen_s.methods)
    assert len(best[ten_s]) == len(ten_s.methods) * len(ten_s.modes)
    last_pack = max(i for i, call in enumerate(calls) if call == ("15s.mp4", "full", "pack"))
    assert best[fifteen_s][("pack", "full")]["call"] == last_pack


def test_on_a_tiny_clip_every_method_returns_what_the_pack_returns(bench, tmp_path):
    """The floors decode and fill as many frames as the pack returns, of the same size, in each mode
    (in this process: what the worker counts, not what it measures)."""
    from fake_cometapi.media import make_mp4

    # A strip 1920 wide, so the selective mode's max_side=960 halves it; 2 MB a frame as float32.
    clip = make_mp4(tmp_path / "strip.mp4", seconds=2.5, fps=24, width=1920, height=96, audio=False)
    for mode, frames, size in (("full", 60, 1920 * 96), ("selective", 48, 960 * 48)):
        runs = {method: bench.worker(method, mode, str(clip)) for method in bench.METHODS}
        assert {r["frames"] for r in runs.values()} == {frames}
        assert {r["out_bytes"] for method, r in runs.items() if method != "decode-floor"} == {frames * size * 3 * 4}
        assert runs["pack"]["peak"] >= runs["pack"]["rss_before"] > 0
