"""`dnnh export`: a trained run as one self-contained ONNX file (raw uint8 images in, codes out).

    dnnh export --run runs/x --out model.onnx [--role query|database] [--opset 17] [--force]

Input ``images``: uint8 [N, S, S, C] at the run's input size S and channels C (the graph does not
resize: resize images to S x S first, after turning them upright by their EXIF orientation, as dnnh
does when it reads a file: PIL.ImageOps.exif_transpose). Outputs ``bits`` uint8 [N, nbits] and
``codes`` uint8 [N, ceil(nbits/8)], packed with bit 0 in the least significant bit of byte 0 (the
bytes ``dnnh encode`` writes). Needs ``pip install 'dnnh[onnx]'``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained run to ONNX (uint8 images -> bits and packed codes)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a trained run directory")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write (replaced atomically)")
    p.add_argument("--role", choices=("database", "query"), default="database",
                   help="which network with a separate query network (default database; the same one otherwise)")
    p.add_argument("--opset", type=int,
                   help="ONNX opset, 11 to the highest this torch writes (20 for torch 2.x; default 17)")
    p.add_argument("--force", action="store_true", help="overwrite --out even if it is not an ONNX model "
                                                        "(never a file of a run directory)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dnnh.export import DEFAULT_OPSET, export_onnx

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    done = export_onnx(args.run, args.out, role=args.role, opset=opset, force=args.force)
    s, c = done["input_size"], done["channels"]
    print(f"wrote {done['path']} ({done['bytes']:,} bytes): {done['role']} network, uint8 images "
          f"[N, {s}, {s}, {c}] -> bits [N, {done['nbits']}] and codes [N, {done['code_bytes']}] (opset {done['opset']})")
    return 0
