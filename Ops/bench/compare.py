"""Ops/bench/compare.py ENGINE.jsonl PEERS.jsonl [DECODE.jsonl] — the side-by-side tables of
Ops/bench-engine: per architecture and measurement, this engine's images/s (median of the runs,
and the range) beside ONNX Runtime's and PyTorch's, and the ratio engine / peer (median over
median); then, if DECODE.jsonl has rows, decode + preprocess milliseconds per image on one core
for this project (fast PNG reader and libpng alone), OpenCV and Pillow, and how many times faster
this project's chain is than each peer's."""
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


def engine_table(engine, peers):
    versions = next((f"PyTorch {d['torch']}, ONNX Runtime {d['onnxruntime']}" for rs in peers.values() for d in rs), "peers not run")
    runs = max((len(v) for v in engine.values()), default=0)
    vectors = next((d["onednn_vectors"] for rs in engine.values() for d in rs if "onednn_vectors" in d), "unknown")
    print(f"images/s, median of {runs} run(s) (range); ratio = engine / peer. {versions}; this engine's oneDNN on {vectors}")
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


def decode_table(path):
    rows = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    if not rows:
        return
    chains = {}
    for d in rows:
        if "png" in d:  # xray bench decode
            name = "this project" if d["png"] == "fast" else "this project, libpng"
            chains.setdefault(name, []).append((d["decode_ms"], d["preprocess_ms"], d["chain_ms"]))
        else:
            for peer, label in (("opencv", f"OpenCV {d['opencv']}"), ("pillow", f"Pillow {d['pillow']}")):
                chains.setdefault(label, []).append((d[f"{peer}_decode_ms"], d[f"{peer}_preprocess_ms"], d[f"{peer}_chain_ms"]))
    ours = statistics.median(c for _, _, c in chains.get("this project", [(0, 0, 0)]))
    runs = max(len(v) for v in chains.values())
    print(f"\ndecode + preprocess (resize 256, crop 224, normalise) of {rows[0]['images']} NIH PNGs, one core, "
          f"ms per image, median of {runs} run(s) (range); ratio = peer / this project")
    print(f"{'':22} {'decode':>20} {'preprocess':>20} {'chain':>20}  {'ratio':>6}")
    for name, values in chains.items():
        cells = []
        for i in range(3):
            v = [x[i] for x in values]
            cells.append(f"{statistics.median(v):6.2f} ({min(v):.2f}–{max(v):.2f})" if len(v) > 1 else f"{v[0]:6.2f}")
        chain = statistics.median(x[2] for x in values)
        ratio = f"{chain / ours:.2f}x" if ours else "—"
        print(f"{name:22} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20}  {ratio:>6}")


engine_rows = load(sys.argv[1])
if engine_rows:
    engine_table(engine_rows, load(sys.argv[2]))
if len(sys.argv) > 3:
    decode_table(sys.argv[3])
