"""Ops/bench/decode_peers.py — the same work as `xray bench decode --json`, done by OpenCV and by
Pillow on one core: decode an encoded image from memory to 8-bit gray, resize the shorter side to
256 (OpenCV: INTER_AREA, its usual choice for shrinking; Pillow: antialiased BILINEAR, which
this project matches), take the centre 224 x 224, scale to [0, 1], normalise with ImageNet's
mean and std into a 3 x 224 x 224 float32 tensor. One JSON line with milliseconds per image.

    PYTHONPATH=.deps/reference:.deps/bench python3 Ops/bench/decode_peers.py --data DIR --limit 60 --passes 2
"""
import argparse, glob, io, json, os, time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import cv2
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def resized_size(w, h, short=256):
    # torchvision's Resize(int): the shorter side to `short`, the longer truncated.
    return (short, int(short * h / w)) if w <= h else (int(short * w / h), short)


def finish(gray):
    h, w = gray.shape
    top, left = round((h - 224) / 2), round((w - 224) / 2)
    crop = gray[top:top + 224, left:left + 224].astype(np.float32) / 255
    return (np.broadcast_to(crop, (3, 224, 224)) - MEAN) / STD


def opencv(data):
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    t = time.perf_counter()
    h, w = gray.shape
    tensor = finish(cv2.resize(gray, resized_size(w, h), interpolation=cv2.INTER_AREA))
    return t, tensor


def pillow(data):
    image = Image.open(io.BytesIO(data)).convert("L")
    image.load()
    t = time.perf_counter()
    tensor = finish(np.asarray(image.resize(resized_size(*image.size), Image.BILINEAR)))
    return t, tensor


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=60)
    p.add_argument("--passes", type=int, default=2)
    a = p.parse_args()
    cv2.setNumThreads(1)
    files = sorted(glob.glob(os.path.join(a.data, "**", "*.png"), recursive=True))[: a.limit]
    encoded = [open(f, "rb").read() for f in files]
    row = {"bench": "decode", "images": len(encoded), "opencv": cv2.__version__, "pillow": Image.__version__}
    for name, chain in (("opencv", opencv), ("pillow", pillow)):
        for data in encoded[:3]:
            chain(data)  # warm-up
        decode = preprocess = 0.0
        for _ in range(a.passes):
            for data in encoded:
                t0 = time.perf_counter()
                t1, _ = chain(data)
                t2 = time.perf_counter()
                decode += t1 - t0
                preprocess += t2 - t1
        n = len(encoded) * a.passes
        row.update({f"{name}_decode_ms": decode / n * 1000, f"{name}_preprocess_ms": preprocess / n * 1000,
                    f"{name}_chain_ms": (decode + preprocess) / n * 1000})
    print(json.dumps(row))


if __name__ == "__main__":
    main()
