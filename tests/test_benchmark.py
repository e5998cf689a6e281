"""The throughput benchmark's quick mode, so that it cannot silently rot."""
import json

from benchmarks.train_throughput import main


def test_quick_benchmark_measures_every_part(tmp_path, monkeypatch):
    monkeypatch.setenv("S10_DEVICE", "cpu")
    out = tmp_path / "bench.json"
    result = main(["--quick", "--rounds", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == result
    parts = {row["part"] for row in result["rows"]}
    assert parts == {"model-only train step", "data pipeline", "real train loop", "model-only eval step", "real evaluate"}
    assert len([r for r in result["rows"] if r["part"] == "model-only train step"]) == 4
    assert {r["config"] for r in result["rows"] if r["part"] == "data pipeline"} >= {"workers=0", "workers=1", "workers=2"}
    assert all(row["images_per_s"] > 0 for row in result["rows"])
    info = result["info"]
    assert info["threads"] >= 1 and info["torch"] and info["device"].startswith("cpu")
    assert 0 < info["loop_fraction"] and info["predicted_24_epochs_s_real"] > 0
