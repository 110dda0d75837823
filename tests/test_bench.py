"""The benchmarks time the shipped model beside both ST-GCN baselines (a quick CPU run)."""

from __future__ import annotations


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
