#!/usr/bin/env python3
"""Converts Natural Earth's 1:110m land outlines into the dashboard's world map (run once; the
output is committed as Sources/HTTPAPI/Dashboard/coastline.json).

Source: Natural Earth (public domain, naturalearthdata.com), 1:110m Admin 0 countries, as
shipped in the `naturalearth_lowres` dataset of the geopandas 0.x wheel on PyPI:

    pip download "geopandas<1" --no-deps -d /tmp/ne
    python3 scripts/coastline.py /tmp/ne/geopandas-0.14.4-py3-none-any.whl \
        > Sources/HTTPAPI/Dashboard/coastline.json

Standard library only: reads the shapefile's polygons straight from the wheel (ESRI Shapefile
technical description, 1998: a 100-byte header, then records of shape type 5 = Polygon with
parts and little-endian double points), simplifies each ring (Douglas-Peucker, 0.15°), drops
rings smaller than MIN_AREA square degrees, and writes coordinates as integers in tenths of a
degree, delta-encoded: `rings: [[lon0, lat0, dlon1, dlat1, ...], ...]`. About 40 kB.
"""

from __future__ import annotations

import json
import struct
import sys
import zipfile

SHP = "geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp"
TOLERANCE = 0.15  # degrees
MIN_AREA = 0.8    # square degrees: keeps Iceland-sized and larger islands, drops specks
SCALE = 10        # tenths of a degree


def polygons(shp: bytes) -> list[list[tuple[float, float]]]:
    """Every ring of every Polygon record (shape type 5)."""
    (code,) = struct.unpack(">i", shp[0:4])
    if code != 9994:
        raise SystemExit("not a shapefile (file code %d)" % code)
    rings: list[list[tuple[float, float]]] = []
    at = 100
    while at + 8 <= len(shp):
        _, length_words = struct.unpack(">ii", shp[at:at + 8])
        content = shp[at + 8:at + 8 + 2 * length_words]
        at += 8 + 2 * length_words
        (shape_type,) = struct.unpack("<i", content[0:4])
        if shape_type != 5:
            continue
        num_parts, num_points = struct.unpack("<ii", content[36:44])
        parts = list(struct.unpack("<%di" % num_parts, content[44:44 + 4 * num_parts]))
        base = 44 + 4 * num_parts
        points = [struct.unpack("<dd", content[base + 16 * i: base + 16 * i + 16]) for i in range(num_points)]
        for p, start in enumerate(parts):
            end = parts[p + 1] if p + 1 < num_parts else num_points
            rings.append(points[start:end])
    return rings


def simplify(points: list[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    """Douglas-Peucker, iterative (rings have a few hundred points at most)."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        (ax, ay), (bx, by) = points[a], points[b]
        dx, dy = bx - ax, by - ay
        norm = (dx * dx + dy * dy) ** 0.5
        best, index = 0.0, -1
        for i in range(a + 1, b):
            px, py = points[i]
            d = abs(dy * (px - ax) - dx * (py - ay)) / norm if norm > 0 else ((px - ax) ** 2 + (py - ay) ** 2) ** 0.5
            if d > best:
                best, index = d, i
        if index >= 0 and best > tolerance:
            keep[index] = True
            stack += [(a, index), (index, b)]
    return [p for p, k in zip(points, keep) if k]


def area(points: list[tuple[float, float]]) -> float:
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]))) / 2


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with zipfile.ZipFile(sys.argv[1]) as wheel:
        shp = wheel.read(SHP)
    out = []
    points_total = 0
    for ring in polygons(shp):
        if area(ring) < MIN_AREA:
            continue
        simple = simplify(ring, TOLERANCE)
        quantised: list[tuple[int, int]] = []
        for lon, lat in simple:
            q = (round(lon * SCALE), round(lat * SCALE))
            if not quantised or quantised[-1] != q:
                quantised.append(q)
        if len(quantised) < 4:
            continue
        flat = [quantised[0][0], quantised[0][1]]
        for (x0, y0), (x1, y1) in zip(quantised, quantised[1:]):
            flat += [x1 - x0, y1 - y0]
        out.append(flat)
        points_total += len(quantised)
    doc = {
        "source": "Natural Earth 1:110m Admin 0 (public domain), via geopandas 0.14 naturalearth_lowres; scripts/coastline.py",
        "scale": SCALE,
        "encoding": "each ring: lon0, lat0 in 1/scale degrees, then deltas",
        "points": points_total,
        "rings": out,
    }
    json.dump(doc, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
