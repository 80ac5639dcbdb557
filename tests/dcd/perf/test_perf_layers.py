"""tools/benchmark_layers.py through pycaffe on the CPU with small sizes:
the JSON record (device, build, per-layer ms per frame and FPS, the
displacement map)."""
import json
import os

import pytest

from toolhelpers import load_tool


def test_benchmark_layers_json_on_cpu(tmp_path):
    out = tmp_path / "layers.json"
    tool = load_tool("benchmark_layers")
    assert tool.main(["--channels", "4", "--sizes", "12", "--displacements", "1",
                      "--batches", "2", "--no-reference", "--json", str(out)]) == 0
    bench = json.loads(out.read_text())
    assert bench["mode"] == "cpu" and bench["device"].startswith("CPU")
    assert bench["build"]["cuda"] is False and bench["build"]["cudnn"] is False
    (config,) = bench["configs"]
    assert (config["size"], config["max_displacement"], config["batch"]) == (12, 1, 2)
    assert set(config["layers"]) == {"CostVolume", "SoftDisplacement", "BilinearWarp", "chain"}
    cv = config["layers"]["CostVolume"]
    assert cv["forward_ms_per_frame"] > 0
    assert abs(cv["forward_fps"] * cv["forward_ms_per_frame"] - 1e3) < 1e-6
    assert config["displacement_map"]["forward_ms_per_frame"] > cv["forward_ms_per_frame"]
    # Where the chain's time goes: each layer that computes, and the floor.
    chain = config["layers"]["chain"]
    assert set(chain["by_layer"]) == {"CostVolume", "SoftDisplacement", "BilinearWarp", "Split"}
    assert all(t["backward_ms_per_frame"] > 0 for t in chain["by_layer"].values())
    assert 0 < chain["cost_volume_multiply_add_floor_ms_per_frame"]


def test_cpu_isa_reads_the_flags_as_the_layer_picks(tmp_path):
    from dcd.perf.layers import cpu_isa
    info = tmp_path / "cpuinfo"
    cases = {"fpu sse2 avx2 fma avx512f": "AVX-512", "sse2 avx2 fma": "AVX2",
             "sse2 avx2 avx512f": "baseline", "sse2": "baseline"}
    for flags, isa in cases.items():
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert cpu_isa(str(info), environ={}) == isa
    assert cpu_isa(str(tmp_path / "missing"), environ={}) == "baseline"
    # DCD_CPU_KERNELS caps the variant, never raises it.
    info.write_text("processor\t: 0\nflags\t\t: sse2 avx2 fma avx512f\n")
    assert cpu_isa(str(info), environ={"DCD_CPU_KERNELS": "avx2"}) == "AVX2"
    assert cpu_isa(str(info), environ={"DCD_CPU_KERNELS": "baseline"}) == "baseline"
    info.write_text("processor\t: 0\nflags\t\t: sse2\n")
    assert cpu_isa(str(info), environ={"DCD_CPU_KERNELS": "avx2"}) == "baseline"


def test_benchmark_layers_json_with_torch(tmp_path):
    """With torch installed, the chain's record carries PyTorch autograd's
    times, and the record names the CPU kernel variant."""
    pytest.importorskip("torch")
    out = tmp_path / "layers.json"
    tool = load_tool("benchmark_layers")
    assert tool.main(["--channels", "4", "--sizes", "10", "--displacements", "1",
                      "--batches", "1", "--json", str(out)]) == 0
    bench = json.loads(out.read_text())
    assert bench["cpu_kernels"] in ("AVX-512", "AVX2", "baseline")
    chain = bench["configs"][0]["layers"]["chain"]
    assert chain["torch_forward_ms_per_frame"] > 0
    assert chain["torch_forward_backward_ms_per_frame"] > 0
    # The lowest of the rounds' medians, timed in turns with the chain.
    medians = chain["torch_forward_backward_medians_ms_per_frame"]
    assert len(medians) == tool.TORCH_ROUNDS
    assert chain["torch_forward_backward_ms_per_frame"] == min(medians)
    assert chain["forward_backward_ms_per_frame_beside_torch"] > 0
    assert chain["torch_cpu_kernels"] in ("AVX-512", "AVX2", "baseline")
    # Torch's temporaries come back from malloc's kept memory, not as fresh pages.
    if bench["malloc_keeps_freed_memory"]:
        assert 0 <= chain["torch_forward_backward_page_faults"] < 100


def test_targets_judge_forward_backward_and_torch(capsys):
    """The target lines at C=64, 112x112, d=7: shares of the same run's
    sgemm for the CostVolume forward and backward, the chain against torch."""
    from dcd.perf.layers import Config, TorchComparison, flops
    tool = load_tool("benchmark_layers")
    config = Config(64, 112, 7, 1)
    fwd_flops, bwd_flops = flops(config)["CostVolume"]
    ceilings = [100.0, 95.0, 98.0]  # GFLOP/s, first, after the layers, last
    fwd = fwd_flops / 60e9    # 60% of the highest
    bwd = bwd_flops / 40e9    # 40%
    rows = [(config, "CostVolume", fwd, fwd + bwd, None, None),
            (config, "chain", 0.02, 0.025, None, None)]
    # The chain's time beside torch's (timed in turns) decides, not the table's.
    torch_times = {config: TorchComparison((0.021, 0.025), (0.3, 0.55), (0.6, 0.55, 0.9))}
    tool.print_targets(rows, ceilings, torch_times, "AVX2")
    out = capsys.readouterr().out
    assert "[held] N=1: CostVolume forward at 60.0% of sgemm" in out
    assert "[NOT HELD] N=1: CostVolume backward (both gradients, f+b - fwd) at 40.0%" in out
    # How far each sits from the line, in time: 60% is 16.7% under what 50%
    # allows; 40% needs a fifth of its time off.
    assert (f"forward at 60.0% of sgemm GFLOP/s (target >= 50%): {fwd * 1e3:.2f} ms, where "
            f"50% allows {fwd * 1.2e3:.2f}: 16.7% under") in out
    assert (f"(the forward's target, >= 50%): {bwd * 1e3:.2f} ms, where 50% allows "
            f"{bwd * 0.8e3:.2f}: needs 20.0% off") in out
    assert "[held] N=1: three layers forward+backward 22.0x" in out
    assert "like for like" not in out and "load changed" not in out
    slow = {config: TorchComparison((0.021, 0.03), (0.3, 0.55), (0.55,))}
    tool.print_targets(rows, ceilings, slow, "AVX2")
    assert "[NOT HELD] N=1: three layers forward+backward 18.3x" in capsys.readouterr().out
    tool.print_targets(rows, ceilings, torch_times, "AVX2", "AVX-512")
    assert "(sgemm ran AVX-512 kernels, the layers AVX2" in capsys.readouterr().out
    tool.print_targets(rows, ceilings, torch_times, "AVX2", "AVX2", reference_isa="AVX-512")
    out = capsys.readouterr().out
    assert "(PyTorch ran AVX-512 ATen kernels, the layers AVX2: the chain ratio" in out
    assert "sgemm ran" not in out


def test_chain_breakdown_names_the_floor_and_what_20x_torch_needs(capsys):
    """Under the chain's line: its layers' forward + backward, CostVolume's
    multiply-adds at the run's sgemm rate, and the chain time 20x the
    PyTorch figure needs, with the margin either way."""
    from dcd.perf.layers import Config, TorchComparison, flops
    tool = load_tool("benchmark_layers")
    config = Config(64, 112, 7, 1)
    floor_s = sum(flops(config)["CostVolume"]) / 200e9   # at 200 GFLOP/s
    parts = {"Split": (0.0, 0.0002), "BilinearWarp": (0.0004, 0.0008),
             "CostVolume": (0.0023, 0.0054), "SoftDisplacement": (0.0006, 0.0007)}
    rows = [(config, "chain", 0.003, 0.0104, None, None)]
    missed = {config: TorchComparison((0.003, 0.0104), (0.03, 0.181), (0.181,))}
    tool.print_targets(rows, [200.0, 199.0, 198.0], missed, "AVX-512", breakdowns={config: parts})
    out = capsys.readouterr().out
    assert "[NOT HELD] N=1: three layers forward+backward 17.4x" in out
    assert ("CostVolume 2.30 + 5.40, SoftDisplacement 0.60 + 0.70, BilinearWarp 0.40 + 0.80, "
            "Split 0.00 + 0.20; sum 10.40") in out
    assert f"multiply-adds alone take {floor_s * 1e3:.2f} ms at the run's sgemm rate" in out
    assert f"the rest {10.4 - floor_s * 1e3:.2f} ms" in out
    assert "20x PyTorch's 181.0 ms needs the chain at 9.05 ms or less: it took 10.40 ms, " \
           "needs 13.0% off" in out
    held = {config: TorchComparison((0.003, 0.0104), (0.03, 0.2496), (0.2496,))}
    tool.print_targets(rows, [200.0], held, "AVX-512", breakdowns={config: parts})
    assert "needs the chain at 12.48 ms or less: it took 10.40 ms, 16.7% under" in \
        capsys.readouterr().out
    tool.print_targets(rows, [200.0], held, "AVX-512")  # no breakdown measured: no lines
    assert "by layer" not in capsys.readouterr().out
    # A batch's CostVolume rows after another batch's chain row are judged as usual.
    config8 = Config(64, 112, 7, 8)
    fwd8 = flops(config8)["CostVolume"][0] / 120e9    # 60% of 200 GFLOP/s
    tool.print_targets(rows + [(config8, "CostVolume", fwd8, 3 * fwd8, None, None)],
                       [200.0], held, "AVX-512", breakdowns={config: parts})
    assert "[held] N=8: CostVolume forward at 60.0% of sgemm" in capsys.readouterr().out
    # Without torch the breakdown and the floor still print, with no 20x line.
    tool.print_targets(rows, [200.0], {}, "AVX-512", breakdowns={config: parts})
    out = capsys.readouterr().out
    assert "[not measured] N=1: three layers against PyTorch autograd" in out
    assert "sum 10.40" in out and "multiply-adds alone take" in out
    assert "needs the chain" not in out


def test_targets_judge_no_share_when_sgemm_moved_within_the_run(capsys):
    """sgemm timings more than 10% apart within a run (the machine's load
    changed) leave the shares unjudged, whichever side of 50% they fall."""
    from dcd.perf.layers import Config, TorchComparison, flops
    tool = load_tool("benchmark_layers")
    config = Config(64, 112, 7, 1)
    fwd_flops, bwd_flops = flops(config)["CostVolume"]
    fwd, bwd = fwd_flops / 60e9, bwd_flops / 40e9
    rows = [(config, "CostVolume", fwd, fwd + bwd, None, None),
            (config, "chain", 0.02, 0.025, None, None)]
    torch_times = {config: TorchComparison((0.02, 0.025), (0.3, 0.55), (0.55,))}
    tool.print_targets(rows, [100.0, 80.0, 99.0], torch_times, "AVX-512")
    out = capsys.readouterr().out
    assert "(sgemm read 80-100 GFLOP/s within this run, more than 10% apart" in out
    assert "[unsure] N=1: CostVolume forward at 60.0% of sgemm" in out
    assert "[unsure] N=1: CostVolume backward (both gradients, f+b - fwd) at 40.0%" in out
    assert "[held] N=1: three layers forward+backward 22.0x" in out


def test_targets_take_the_one_thread_sgemm_times_the_threads_where_higher(capsys):
    """A load that slows one core throughout holds back OpenBLAS's evenly
    split product on every timing (steady, but low); one thread's figure
    times the layers' threads is then the ceiling the shares are of."""
    from dcd.perf.layers import Config, flops
    tool = load_tool("benchmark_layers")
    config = Config(64, 112, 7, 1)
    fwd_flops, bwd_flops = flops(config)["CostVolume"]
    fwd, bwd = fwd_flops / 60e9, bwd_flops / 40e9    # 60% and 40% of 100 GFLOP/s
    rows = [(config, "CostVolume", fwd, fwd + bwd, None, None)]
    tool.print_targets(rows, [75.0, 74.0, 76.0], {}, "AVX-512", scaled=100.0)
    out = capsys.readouterr().out
    assert "[held] N=1: CostVolume forward at 60.0% of sgemm" in out
    assert "[NOT HELD] N=1: CostVolume backward (both gradients, f+b - fwd) at 40.0%" in out
    # The time 50% allows is of the same ceiling, not of the all-thread 76.
    assert f"where 50% allows {fwd * 1.2e3:.2f}: 16.7% under" in out
    assert f"where 50% allows {bwd * 0.8e3:.2f}: needs 20.0% off" in out


def test_chain_against_torch_alternates_and_keeps_each_sides_lowest(monkeypatch):
    """Rounds of chain fwd, chain f+b, torch fwd, torch f+b medians; each
    side's lowest stands, and torch's f+b medians are all kept."""
    pytest.importorskip("torch")
    import numpy as np
    from dcd.perf import layers
    # chain fwd, chain f+b, torch fwd, torch f+b; twice.
    timings = iter([2.0, 5.0, 30.0, 500.0, 1.0, 6.0, 40.0, 250.0])
    monkeypatch.setattr(layers, "median_seconds", lambda fn, **kw: next(timings))
    config = layers.Config(4, 10, 1, 1)
    result = layers.chain_against_torch(config, np.random.default_rng(0), rounds=2)
    assert result.chain == (1.0, 5.0) and result.torch == (30.0, 250.0)
    assert result.torch_fwd_bwd_medians == (500.0, 250.0)
    assert result.speedup == 50.0
    assert result.torch_page_faults is None  # no pass of torch's ran


def test_time_layer_keeps_the_lowest_of_alternated_medians(monkeypatch):
    """Forward and forward+backward medians alternate, `rounds` each, and
    the lowest of each stands: a load burst in one median does not."""
    import numpy as np
    from dcd.perf import layers
    timings = iter([3.0, 5.0, 1.0, 4.0, 2.0, 6.0])  # fwd, f+b, fwd, f+b, ...
    calls = []

    def fake_median(fn, **kwargs):
        calls.append(fn)
        return next(timings)
    monkeypatch.setattr(layers, "median_seconds", fake_median)
    config = layers.Config(4, 10, 1, 1)
    assert layers.time_layer(config, "CostVolume", np.random.default_rng(0)) == (1.0, 4.0)
    assert len(calls) == 6


def test_layer_threads_follow_omp_num_threads():
    from dcd.perf.layers import layer_threads
    assert layer_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert layer_threads({"OMP_NUM_THREADS": "4,2"}) == 4
    assert layer_threads({}) >= 1 and layer_threads({"OMP_NUM_THREADS": "x"}) >= 1


def test_blas_core_names_numpys_openblas_kernels():
    """numpy's OpenBLAS reports its kernel set; the ISA map knows it."""
    import numpy as np  # noqa: F401 (loads OpenBLAS)
    from dcd.perf.layers import blas_core, blas_isa
    core = blas_core()
    assert core, "numpy's OpenBLAS did not name its kernels"
    assert blas_isa(core) in {"AVX-512", "AVX2", "AVX", "SSE"}, core
    assert blas_isa("Haswell") == "AVX2" and blas_isa("SkylakeX") == "AVX-512"
    assert blas_isa(None) is None


def test_torch_isa_follows_aten_cpu_capability():
    """ATEN_CPU_CAPABILITY (which --kernels sets) caps torch's kernels, and
    torch_isa reads the cap back in cpu_isa's names."""
    pytest.importorskip("torch")
    import subprocess
    import sys
    from pathlib import Path
    python_dir = Path(__file__).resolve().parents[3] / "python"
    code = "from dcd.perf.layers import torch_isa; print(torch_isa())"
    # avx2 on a machine without AVX2 reads back as baseline.
    for cap, isas in (("default", {"baseline"}), ("avx2", {"AVX2", "baseline"})):
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap, PYTHONPATH=str(python_dir))
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out in isas, (cap, out)


def test_kernel_environment_asks_a_fresh_process_only_when_needed():
    from dcd.perf.layers import kernel_environment
    assert kernel_environment("native", {"PATH": "/bin"}) is None
    env = kernel_environment("avx2", {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "DCD_CPU_KERNELS": "avx2", "OPENBLAS_CORETYPE": "Haswell",
                   "ATEN_CPU_CAPABILITY": "avx2"}
    assert kernel_environment("avx2", env) is None
    assert kernel_environment("baseline", env)["DCD_CPU_KERNELS"] == "baseline"


def test_benchmark_layers_kernels_avx2_reruns_with_both_caps(tmp_path):
    """--kernels avx2 measures the AVX2 variant against Haswell sgemm."""
    import subprocess
    import sys
    from pathlib import Path
    tool = Path(__file__).resolve().parents[3] / "tools" / "benchmark_layers.py"
    out = subprocess.run([sys.executable, str(tool), "--kernels", "avx2", "--channels", "4",
                          "--sizes", "12", "--displacements", "1", "--batches", "1",
                          "--no-reference"], capture_output=True, text=True, check=True).stdout
    assert "OpenBLAS Haswell" in out, out
    assert "CPU kernels: AVX2" in out or "CPU kernels: baseline" in out, out
