#!/usr/bin/env python3
"""Writes a seed corpus for the read_npz fuzz target (no numpy needed):
stored and deflate-compressed archives of .npy members for the plain reader
(y of shape (N), (N, c), integer (N)) and the sequence reader ((N, n, c),
(N, n) floats, (N, n) integer labels), in several dtypes, byte orders,
header versions and member names.

    python3 fuzz/seed_npz.py fuzz/corpus/read_npz
"""
import io
import os
import struct
import sys
import zipfile


def npy(descr, shape, values, fortran=False, version=1):
    code = {"f4": "f", "f8": "d", "i1": "b", "i2": "h", "i4": "i", "i8": "q",
            "u1": "B", "u2": "H", "u4": "I", "u8": "Q"}[descr[1:]]
    order = ">" if descr[0] == ">" else "<"
    shape_s = "(" + "".join(f"{s}, " for s in shape)[:-2] + ("," if len(shape) == 1 else "") + ")"
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, "True" if fortran else "False", shape_s)
    pre = 10 if version == 1 else 12
    d = d.encode()
    while (pre + len(d) + 1) % 64:
        d += b" "
    d += b"\n"
    head = b"\x93NUMPY" + bytes([version, 0])
    head += struct.pack("<H" if version == 1 else "<I", len(d))
    return head + d + struct.pack(order + code * len(values), *values)


def archive(members, compressed):
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def main(out):
    os.makedirs(out, exist_ok=True)
    N, n, d = 3, 2, 2
    xs = [float(i % 7) - 3.0 for i in range(N * n * d)]
    cases = {
        "y1": [("X.npy", npy("<f8", (N, n, d), xs)), ("y.npy", npy("<f8", (N,), [1.0, 2.0, 3.0]))],
        "y2": [("X.npy", npy("<f4", (N, n, d), xs)), ("y.npy", npy("<f4", (N, 2), [0.5] * 6))],
        "labels": [("X.npy", npy("<f8", (N, n, d), xs)), ("y.npy", npy("<i8", (N,), [0, 2, 1]))],
        "u1": [("X", npy(">f8", (N, n, d), xs, fortran=True)), ("y", npy("|u1", (N,), [1, 0, 1]))],
        "seq3": [("X.npy", npy("<f8", (N, n, d), xs)), ("y.npy", npy("<f8", (N, n, 2), [0.25] * 12))],
        "seq2": [("X.npy", npy("<f8", (N, n, d), xs, version=2)), ("y.npy", npy(">f4", (N, n), [1.5] * 6))],
        "seqlab": [("X.npy", npy("<f8", (N, n, d), xs, version=3)), ("y.npy", npy("<u2", (N, n), [0, 1, 2, 0, 1, 2]))],
        "xonly": [("X.npy", npy("<f8", (N, n, d), xs))],
    }
    for name, members in cases.items():
        for compressed in (False, True):
            path = os.path.join(out, f"{name}-{'deflate' if compressed else 'stored'}.npz")
            with open(path, "wb") as f:
                f.write(archive(members, compressed))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/read_npz")
