#!/usr/bin/env python3
"""Writes the small PNG fixtures of ImagingTests and expected.json, their expected 8-bit gray
pixels computed here, independently of the Swift decoder: RGB by ITU-R 601 luma with Pillow's
integer weights ((R*19595 + G*38470 + B*7471 + 0x8000) >> 16), 16-bit by round(v / 257),
alpha dropped. Pure Python (zlib + struct), so it needs no image library. Run from anywhere;
the files are committed, so tests do not need Python."""
import json, os, random, struct, zlib

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

# Every row filter (PNG spec section 9), on each kind of file the fast PNG path takes: rows use
# Paeth, Average, Up, Sub, None, and again (the first row has no row above). The image data is
# split over several IDAT chunks, with tIME and tEXt chunks around them.
def filter_rows(rows, bpp):
    out, prior = [], bytes(len(rows[0]))
    for y, row in enumerate(rows):
        kind = [4, 3, 2, 1, 0][y % 5]
        enc = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            if kind == 0: pred = 0
            elif kind == 1: pred = a
            elif kind == 2: pred = b
            elif kind == 3: pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            enc.append((x - pred) % 256)
        out.append(bytes([kind]) + bytes(enc))
        prior = row
    return b"".join(out)

def filtered_png(width, height, bit_depth, colour_type, rows, bpp):
    data = zlib.compress(filter_rows(rows, bpp), 9)
    parts = [data[i:i + 97] for i in range(0, len(data), 97)]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
            + chunk(b"tIME", struct.pack(">HBBBBB", 2026, 12, 2, 12, 0, 0)) + b"".join(chunk(b"IDAT", p) for p in parts)
            + chunk(b"tEXt", b"Comment\x00every filter") + chunk(b"IEND", b""))

rng = random.Random(7)
FW, FH = 13, 10
def filtered_fixture(name, bit_depth, colour_type, samples, gray_of):
    pixels = [[tuple(rng.randrange(1 << bit_depth) for _ in range(samples)) for _ in range(FW)] for _ in range(FH)]
    fmt = ">" + ("H" if bit_depth == 16 else "B") * samples
    rows = [b"".join(struct.pack(fmt, *p) for p in row) for row in pixels]
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(filtered_png(FW, FH, bit_depth, colour_type, rows, samples * bit_depth // 8))
    expected[name] = {"width": FW, "height": FH, "gray": [gray_of(p) for row in pixels for p in row]}

filtered_fixture("filters_gray8.png", 8, 0, 1, lambda p: p[0])
filtered_fixture("filters_gray_alpha8.png", 8, 4, 2, lambda p: p[0])
filtered_fixture("filters_rgb8.png", 8, 2, 3, lambda p: luma(*p))
filtered_fixture("filters_rgba8.png", 8, 6, 4, lambda p: luma(*p[:3]))
filtered_fixture("filters_gray16.png", 16, 0, 1, lambda p: to8(p[0]))
filtered_fixture("filters_rgb16.png", 16, 2, 3, lambda p: to8(luma(*p)))

# Gamma chunks: gAMA 45455 with sRGB (what the reader's 8-bit output assumes: no conversion) and
# gAMA 1.0 (linear: libpng converts it to sRGB, so the fast path must leave it to libpng).
def with_chunks(name, extra):
    rows = [bytes((x * 19 + y * 7) % 256 for x in range(FW)) for y in range(FH)]
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", FW, FH, 8, 0, 0, 0, 0)) + extra
                + chunk(b"IDAT", zlib.compress(filter_rows(rows, 1))) + chunk(b"IEND", b""))
    return [v for row in rows for v in row]
expected["gamma_srgb_gray8.png"] = {"width": FW, "height": FH,
    "gray": with_chunks("gamma_srgb_gray8.png", chunk(b"sRGB", b"\x00") + chunk(b"gAMA", struct.pack(">I", 45455)))}
with_chunks("gamma_linear_gray8.png", chunk(b"gAMA", struct.pack(">I", 100000)))

# A filter type PNG does not define (5) on the third row: a corrupt file.
bad = bytearray(filter_rows([bytes(range(y, y + FW)) for y in range(FH)], 1))
bad[2 * (FW + 1)] = 5
with open(os.path.join(HERE, "filters_bad_type.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", FW, FH, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(bad))) + chunk(b"IEND", b""))

with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
print("wrote", len(expected) + 3, "fixtures to", HERE)
