"""Draw Tandem's app icons (PNG, no dependencies): two overlapping cards on indigo.

    python3 client_pwa/scripts/make_icons.py      (writes client_pwa/public/icons/*.png)

The maskable icon keeps its drawing inside the central 80% safe zone.
"""

import struct
import zlib
from pathlib import Path

BG = (79, 70, 229)
FG = (255, 255, 255)
ACCENT = (165, 180, 252)


def png(size: int, pixels) -> bytes:
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def draw(size: int, scale: float) -> list[list[tuple[int, int, int]]]:
    """Cards as fractions of the icon; ``scale`` shrinks the drawing for the safe zone."""

    def box(x0, y0, x1, y1):
        c = 0.5
        return [c + (v - c) * scale for v in (x0, y0, x1, y1)]

    back = box(0.22, 0.20, 0.66, 0.62)
    front = box(0.36, 0.38, 0.80, 0.80)
    rows = []
    for j in range(size):
        row = []
        for i in range(size):
            x, y = (i + 0.5) / size, (j + 0.5) / size
            color = BG
            if back[0] <= x <= back[2] and back[1] <= y <= back[3]:
                color = ACCENT
            if front[0] <= x <= front[2] and front[1] <= y <= front[3]:
                color = FG
                # three lines of "text" on the front card
                for k in range(3):
                    ly = front[1] + (front[3] - front[1]) * (0.25 + 0.2 * k)
                    if abs(y - ly) < 0.018 * scale and front[0] + 0.06 * scale < x < front[2] - (0.06 + 0.08 * k) * scale:
                        color = BG
            row.append(color)
        rows.append(row)
    return rows


out = Path(__file__).resolve().parent.parent / "public" / "icons"
out.mkdir(parents=True, exist_ok=True)
for size in (192, 512):
    (out / f"icon-{size}.png").write_bytes(png(size, draw(size, 1.0)))
(out / "maskable-512.png").write_bytes(png(512, draw(512, 0.72)))
(out / "apple-touch-icon.png").write_bytes(png(180, draw(180, 0.9)))
print("wrote", sorted(p.name for p in out.iterdir()))
