"""Markdown table from benchmarks/editing.py JSON files (later files override earlier rows).

  python benchmarks/editing_table.py benchmarks/results/editing18_table.json benchmarks/results/editing18_table2.json ...
"""

from __future__ import annotations

import json
import sys

KINDS = ("colour", "shape", "size", "action")
COLUMNS = [("psnr_outside_target", "PSNR out (dB)"), ("psnr_full_target", "PSNR full"), ("ssim_full_target", "SSIM full"),
           ("mask_iou", "mask IoU"), ("warp_error", "warp err"), ("flicker", "flicker"), ("inversion_psnr", "inv. PSNR"),
           ("seconds_per_frame", "s/frame")]  # fmt: skip


def main(paths: list[str]) -> None:
    rows: dict[tuple[str, str], dict] = {}
    for path in paths:
        for r in json.load(open(path)).get("table", []):
            rows[(r["config"], r["kind"])] = r
    configs = list(dict.fromkeys(c for c, _ in rows))
    print("| config | " + " | ".join(f"success {k}" for k in KINDS) + " | " + " | ".join(h for _, h in COLUMNS) + " |")
    print("|---" * (1 + len(KINDS) + len(COLUMNS)) + "|")
    for c in configs:
        mine = [rows[(c, k)] for k in KINDS if (c, k) in rows]
        cells = [f"{rows[(c, k)]['success']:.2f}" if (c, k) in rows and rows[(c, k)].get("success") is not None else "–" for k in KINDS]
        for key, _ in COLUMNS:
            vals = [r[key] for r in mine if r.get(key) is not None]
            cells.append(f"{sum(vals) / len(vals):.2f}" if vals else "–")
        extra = ""
        drag = [r for r in mine if r.get("drag_endpoint_error") is not None]
        if drag:
            extra = f" (endpoint error {drag[0]['drag_endpoint_error']:.1f} px)"
        print(f"| {c}{extra} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
