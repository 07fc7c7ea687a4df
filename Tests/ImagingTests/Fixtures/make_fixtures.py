#!/usr/bin/env python3
"""Writes the small PNG fixtures of ImagingTests and expected.json, their expected 8-bit gray
pixels computed here, independently of the Swift decoder: RGB by ITU-R 601 luma with Pillow's
integer weights ((R*19595 + G*38470 + B*7471 + 0x8000) >> 16), 16-bit by round(v / 257),
alpha dropped. Pure Python (zlib + struct), so it needs no image library. Run from anywhere;
the files are committed, so tests do not need Python."""
import json, os, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

def png(width, height, bit_depth, colour_type, rows, palette=None):
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

def luma(r, g, b):
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16

def to8(v16):
    return (v16 * 255 + 32767) // 65535

W, H = 4, 3
expected = {}

def write(name, data, gray):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    expected[name] = {"width": W, "height": H, "gray": gray}

# 16-bit gray
g16 = [0, 257, 32768, 65535, 1000, 40000, 12345, 65534, 128, 129, 60000, 3]
write("gray16.png", png(W, H, 16, 0, [b"".join(struct.pack(">H", v) for v in g16[r*W:(r+1)*W]) for r in range(H)]),
      [to8(v) for v in g16])
# 8-bit gray + alpha (alpha varies: it must be ignored)
ga = [(10, 255), (20, 0), (30, 128), (40, 255), (0, 1), (255, 255), (128, 0), (7, 7), (99, 99), (200, 10), (1, 2), (3, 4)]
write("gray_alpha8.png", png(W, H, 8, 4, [bytes(sum(ga[r*W:(r+1)*W], ())) for r in range(H)]), [g for g, _ in ga])
# 8-bit RGB
rgb = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (10, 20, 30), (200, 100, 50), (1, 2, 3),
       (128, 128, 128), (90, 180, 45), (33, 66, 99), (250, 5, 125)]
write("rgb8.png", png(W, H, 8, 2, [bytes(sum(rgb[r*W:(r+1)*W], ())) for r in range(H)]), [luma(*p) for p in rgb])
# 8-bit RGBA
rgba = [p + (a,) for p, a in zip(rgb, [255, 0, 128, 255, 1, 2, 3, 4, 5, 6, 7, 255])]
write("rgba8.png", png(W, H, 8, 6, [bytes(sum(rgba[r*W:(r+1)*W], ())) for r in range(H)]), [luma(*p[:3]) for p in rgba])
# 16-bit RGBA
rgba16 = [(min(r * 257 + 3, 65535), g * 257, min(b * 257 + 100, 65535), 65535) for r, g, b in rgb]
write("rgba16.png", png(W, H, 16, 6, [b"".join(struct.pack(">HHHH", *p) for p in rgba16[r*W:(r+1)*W]) for r in range(H)]),
      [to8(luma(r, g, b)) for r, g, b, _ in rgba16])
# 8-bit palette (expanded to RGB, then luma)
palette = [(0, 0, 0), (255, 255, 255), (200, 100, 50), (10, 20, 30)]
idx = [0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 2, 2]
write("palette8.png", png(W, H, 8, 3, [bytes(idx[r*W:(r+1)*W]) for r in range(H)], palette),
      [luma(*palette[i]) for i in idx])
# Decompression bomb: a header claiming 100000 x 100000 pixels, with one tiny IDAT.
bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)) \
       + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
with open(os.path.join(HERE, "bomb.png"), "wb") as f:
    f.write(bomb)

with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
print("wrote", len(expected) + 1, "fixtures to", HERE)
