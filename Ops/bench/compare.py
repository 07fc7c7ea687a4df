"""Ops/bench/compare.py ENGINE.jsonl PEERS.jsonl — the side-by-side table of Ops/bench-engine:
per architecture and measurement, this engine's images/s (median of the runs, and the range)
beside ONNX Runtime's and PyTorch's, and the ratio engine / peer (median over median)."""
import json, statistics, sys


def load(path):
    rows = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            rows.setdefault(d["arch"], []).append(d)
    return rows


def spread(values):
    if not values:
        return None, "—"
    m = statistics.median(values)
    return m, f"{m:7.1f} ({min(values):.1f}–{max(values):.1f})" if len(values) > 1 else f"{m:7.1f}"


engine, peers = load(sys.argv[1]), load(sys.argv[2])
versions = next((f"PyTorch {d['torch']}, ONNX Runtime {d['onnxruntime']}" for rs in peers.values() for d in rs), "peers not run")
runs = max((len(v) for v in engine.values()), default=0)
print(f"images/s, median of {runs} run(s) (range); ratio = engine / peer. {versions}")
print(f"{'arch':13} {'measure':9} {'this engine':>22} {'ONNX Runtime':>22} {'PyTorch':>22}  {'vs ORT':>7} {'vs torch':>8}")
for arch in engine:
    for measure, ort_key, torch_key in (("infer1", "ort_infer1", "torch_infer1"), ("infer16", "ort_infer16", "torch_infer16"),
                                        ("train16", None, "torch_train16")):
        e, e_text = spread([d[measure] for d in engine[arch] if measure in d])
        o, o_text = spread([d[ort_key] for d in peers.get(arch, []) if ort_key and ort_key in d])
        t, t_text = spread([d[torch_key] for d in peers.get(arch, []) if torch_key in d])
        if e is None:
            continue
        ratio = lambda p: f"{e / p:.2f}x" if p else "—"
        print(f"{arch:13} {measure:9} {e_text:>22} {o_text:>22} {t_text:>22}  {ratio(o):>7} {ratio(t):>8}")
