"""The benchmarks time the shipped model beside both ST-GCN baselines (a quick CPU run)."""

from __future__ import annotations

import pytest


def test_bench_model_times_both_stgcn_baselines_on_the_cpu():
    from finetec_live.inference import speed as bench

    recs = bench.load_models("penn", "cpu")
    names = list(recs)
    assert len(names) == 3 and names[0].startswith("finetec")
    params = [bench.num_params(r) for r in recs.values()]
    assert params[1] == 719_013  # the compact 6-block ST-GCN
    assert 3.0e6 < params[2] < 3.2e6  # the original 10-block ST-GCN
    assert [len(r.config.channels) for r in recs.values()][1:] == [6, 10]
    assert list(recs.values())[2].config.strides == (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
    res = bench.bench_cpu(recs, bench.penn_window(), repeats=2, batches=(1,))
    res["_ratios"] = bench.classify_ratios(res, names)
    assert list(res["_ratios"]) == names[1:]
    table = bench.cpu_table(res)
    for name in names:
        assert name in table
    assert table.count("batch-1 classify ratio ours / ST-GCN") == 2


@pytest.mark.slow
def test_bench_serve_runs_a_server_per_precision_and_reports_the_burst(tmp_path, data_root):
    """tools/bench_serve.py, shortened: the fp32 torch server beside the default one."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from finetec_live.inference.recognizer import bf16_is_native

    out = tmp_path / "serve.json"
    tool = Path(__file__).resolve().parent.parent / "tools" / "bench_serve.py"
    run = subprocess.run([sys.executable, str(tool), "--streams", "2", "--seconds", "2",
                          "--burst", "64", "--burst-rounds", "2", "--backends", "torch",
                          "torch-fp32", "--json",
                          str(out)], capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(out.read_text())
    assert [b["backend"] for b in got["backends"]] == ["torch", "torch-fp32"]
    for b in got["backends"]:
        assert b["server_alive"] and b["burst"]["served"] == 64 and b["burst"]["ratio"] > 0
        assert [r["served"] for r in b["burst"]["rounds"]] == [64, 64]
        r = b["runs"][0]
        assert r["labelled"] + r["not_labelled"] == r["sent"] > 0
        assert r["same_as_recognizer"] >= 0.9
    assert [b["precision"] for b in got["backends"]] == [
        "bf16" if bf16_is_native("cpu") else "fp32", "fp32"]


def test_bench_graphconv_times_both_orders_and_they_agree(data_root, capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    from finetec_live.models.network import GraphConv

    path = Path(__file__).resolve().parent.parent / "tools" / "bench_graphconv.py"
    spec = importlib.util.spec_from_file_location("bench_graphconv", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    import torch

    default, threads = GraphConv.GRAPH_FIRST_FROM, torch.get_num_threads()
    calls = {"conv": 0, "graph": 0}
    def counting(name, key):
        real = getattr(GraphConv, name)

        def counted(self, x):
            calls[key] += 1
            return real(self, x)
        monkeypatch.setattr(GraphConv, name, counted)

    counting("forward_conv_first", "conv")
    counting("forward_graph_first", "graph")
    assert tool.main(["--batches", "1", "4", "--rounds", "1", "--precisions", "fp32",
                      "--threads", "1"]) == 0
    assert calls["conv"] > 0 and calls["graph"] > 0  # each order really ran
    assert GraphConv.GRAPH_FIRST_FROM == default  # restored
    assert torch.get_num_threads() == threads
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| fp32 |")]
    assert len(rows) == 2
    diff = float(out.split("largest logit difference between the orders")[1].split(":")[1]
                 .split(";")[0])
    assert diff < 1e-4
