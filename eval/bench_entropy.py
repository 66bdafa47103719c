"""Entropy-layer benchmark: throughput and rate overhead of ``codec.entropy`` against the raw engines, in one run.

    python -m codec.eval.bench_entropy            # about 10 million symbols per workload
    python -m codec.eval.bench_entropy --quick    # 1 million symbols per workload

Workloads (the same arrays go to every coder):

(a) ``gaussian``: symbols of a discretised Gaussian with per-symbol scales (log-uniform in [0.11, 64]), coded
    with 64 scale tables (CompressAI's scale table, 0.11 .. 256) at 16-bit precision, one table index per symbol.
(b) ``tokens``: 1024-entry categorical tokens (a Zipf-like distribution) under one shared table.

Coders:

- ``codec.entropy``: this package (``encode`` / ``decode``, escapes and CRC included).
- ``constriction (raw, Categorical per table)``: constriction used directly and as fast as it goes on these tables:
  the same integer tables, symbols grouped by table with numpy, one vectorised call per table; no escape coding,
  no framing. Grouping counts in its time because the engine needs it.
- ``constriction (raw, QuantizedGaussian)`` (workload a only): constriction's own per-symbol Gaussian model with
  the per-symbol scales (its probabilities, not our tables: rate shown for information).
- ``compressai.ans (raw)``: CompressAI's C++ rANS, ``encode_with_indexes`` / ``decode_with_indexes`` with the
  same 16-bit tables; its API takes Python lists, and converting the arrays counts in its time.

Throughput is million symbols per second (best of ``--repeat`` runs), one process, one thread. Overhead is the coded
size against the ideal information content ``sum(-log2 p)`` under the quantised tables. The ratio column is ours
divided by the faster raw engine on the same workload and direction.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import constriction
from codec.entropy import CdfTables, decode, encode
from codec.entropy.coder import _model

SCALE_TABLE = np.exp(np.linspace(np.log(0.11), np.log(256.0), 64))


def make_gaussian(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    tables = CdfTables.gaussian(SCALE_TABLE, precision=16)
    scales = np.exp(rng.uniform(np.log(0.11), np.log(64.0), n))
    idx = np.searchsorted(SCALE_TABLE, scales).clip(0, 63).astype(np.int32)
    vals = np.round(rng.normal(0.0, scales)).astype(np.int32)
    return tables, vals, idx, scales


def make_tokens(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    pmf = 1.0 / np.arange(1, 1025) ** 1.1
    pmf = rng.permutation(pmf / pmf.sum())
    tables = CdfTables.from_pmfs([pmf], [0], precision=16, tail_mass=0.0)
    vals = rng.choice(1024, size=n, p=pmf).astype(np.int32)
    return tables, vals


def best_of(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


# --- raw constriction, Categorical per table -------------------------------------------------------------------
def raw_constriction_encode(vals, idx, tables):
    coder = constriction.stream.stack.AnsCoder()
    if idx is None:
        coder.encode_reverse(vals, _model(tables, 0))
        return coder.get_compressed()
    sym = vals - tables.offsets[idx]
    order = np.argsort(idx.astype(np.uint8), kind="stable")
    counts = np.bincount(idx, minlength=tables.num_tables)
    grouped = sym[order]
    ends = np.cumsum(counts)
    for k in range(tables.num_tables - 1, -1, -1):
        if counts[k]:
            coder.encode_reverse(grouped[ends[k] - counts[k]: ends[k]], _model(tables, k))
    return coder.get_compressed()


def raw_constriction_decode(words, idx, tables, n):
    coder = constriction.stream.stack.AnsCoder(words)
    if idx is None:
        return coder.decode(_model(tables, 0), n)
    order = np.argsort(idx.astype(np.uint8), kind="stable")
    counts = np.bincount(idx, minlength=tables.num_tables)
    grouped = np.empty(n, dtype=np.int32)
    start = 0
    for k in range(tables.num_tables):
        if counts[k]:
            grouped[start: start + counts[k]] = coder.decode(_model(tables, k), int(counts[k]))
            start += counts[k]
    out = np.empty(n, dtype=np.int32)
    out[order] = grouped
    return out + tables.offsets[idx]


# --- raw compressai.ans ------------------------------------------------------------------------------------------
def compressai_args(tables):
    cdfs = [tables.cdfs[k, : int(tables.lengths[k]) + 1].tolist() for k in range(tables.num_tables)]
    return cdfs, (tables.lengths + 1).tolist(), tables.offsets.tolist()


def raw_compressai_encode(vals, idx, args):
    from compressai.ans import RansEncoder

    cdfs, lengths, offsets = args
    return RansEncoder().encode_with_indexes(vals.tolist(), idx.tolist(), cdfs, lengths, offsets)


def raw_compressai_decode(data, idx, args):
    from compressai.ans import RansDecoder

    cdfs, lengths, offsets = args
    return np.asarray(RansDecoder().decode_with_indexes(data, idx.tolist(), cdfs, lengths, offsets), dtype=np.int32)


def run(n: int, repeat: int, skip_compressai: bool = False):
    rows = []

    def add(workload, coder, n, te, td, nbytes, ideal, ok):
        rows.append(dict(workload=workload, coder=coder, enc=n / te / 1e6, dec=n / td / 1e6,
                         bps=nbytes * 8 / n, overhead=(nbytes * 8 / ideal - 1) * 100 if ideal else float("nan"),
                         ok=ok))

    # (a) Gaussian, 64 tables
    tables, vals, idx, scales = make_gaussian(n)
    ideal = tables.information_content(vals, idx)
    in_range = np.all((vals - tables.offsets[idx] >= 0) & (vals - tables.offsets[idx] < tables.lengths[idx] - 1))
    assert in_range, "workload (a) must have no out-of-range values for the raw references"
    te, data = best_of(lambda: encode(vals, idx, tables), repeat)
    td, out = best_of(lambda: decode(data, idx, tables), repeat)
    add("(a) gaussian, 64 tables", "codec.entropy", n, te, td, len(data), ideal, np.array_equal(out, vals))
    te, words = best_of(lambda: raw_constriction_encode(vals, idx, tables), repeat)
    td, out = best_of(lambda: raw_constriction_decode(words, idx, tables, n), repeat)
    add("(a) gaussian, 64 tables", "constriction (raw, Categorical per table)", n, te, td, words.nbytes, ideal,
        np.array_equal(out, vals))
    qg = constriction.stream.model.QuantizedGaussian(-4000, 4000)
    means = np.zeros(n)

    def qg_enc():
        c = constriction.stream.stack.AnsCoder()
        c.encode_reverse(vals, qg, means, scales)
        return c.get_compressed()

    te, qwords = best_of(qg_enc, repeat)
    td, out = best_of(lambda: constriction.stream.stack.AnsCoder(qwords).decode(qg, means, scales), repeat)
    add("(a) gaussian, 64 tables", "constriction (raw, QuantizedGaussian; own probabilities)", n, te, td,
        qwords.nbytes, None, np.array_equal(out, vals))
    if not skip_compressai:
        args = compressai_args(tables)
        te, cdata = best_of(lambda: raw_compressai_encode(vals, idx, args), repeat)
        td, out = best_of(lambda: raw_compressai_decode(cdata, idx, args), repeat)
        add("(a) gaussian, 64 tables", "compressai.ans (raw)", n, te, td, len(cdata), ideal, np.array_equal(out, vals))

    # (b) tokens, one shared 1024-entry table
    tables, vals = make_tokens(n)
    ideal = tables.information_content(vals, None)
    te, data = best_of(lambda: encode(vals, None, tables), repeat)
    td, out = best_of(lambda: decode(data, None, tables, shape=vals.shape), repeat)
    add("(b) 1024 tokens, 1 table", "codec.entropy", n, te, td, len(data), ideal, np.array_equal(out, vals))
    te, words = best_of(lambda: raw_constriction_encode(vals, None, tables), repeat)
    td, out = best_of(lambda: raw_constriction_decode(words, None, tables, n), repeat)
    add("(b) 1024 tokens, 1 table", "constriction (raw, Categorical per table)", n, te, td, words.nbytes, ideal,
        np.array_equal(out, vals))
    if not skip_compressai:
        args = compressai_args(tables)
        zeros = np.zeros(n, dtype=np.int32)
        te, cdata = best_of(lambda: raw_compressai_encode(vals, zeros, args), repeat)
        td, out = best_of(lambda: raw_compressai_decode(cdata, zeros, args), repeat)
        add("(b) 1024 tokens, 1 table", "compressai.ans (raw)", n, te, td, len(cdata), ideal, np.array_equal(out, vals))
    return rows


def format_table(rows) -> str:
    lines = ["| workload | coder | encode Msym/s | decode Msym/s | bits/symbol | overhead vs ideal | "
             "enc ratio | dec ratio | lossless |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        raws = [x for x in rows if x["workload"] == r["workload"] and "(raw" in x["coder"]
                and "QuantizedGaussian" not in x["coder"]]
        if r["coder"] == "codec.entropy" and raws:
            er = r["enc"] / max(x["enc"] for x in raws)
            dr = r["dec"] / max(x["dec"] for x in raws)
            ratios = f"{er:.2f}x | {dr:.2f}x"
        else:
            ratios = "| "
        ov = "n/a (own model)" if r["overhead"] != r["overhead"] else f"{r['overhead']:+.4f} %"
        lines.append(f"| {r['workload']} | {r['coder']} | {r['enc']:.1f} | {r['dec']:.1f} | {r['bps']:.4f} | {ov} | "
                     f"{ratios} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 million symbols per workload instead of 10 million")
    ap.add_argument("-n", "--symbols", type=int, default=None, help="symbols per workload")
    ap.add_argument("--repeat", type=int, default=3, help="timing repetitions (best is kept)")
    ap.add_argument("--skip-compressai", action="store_true", help="leave out the compressai.ans reference")
    args = ap.parse_args(argv)
    n = args.symbols or (1_000_000 if args.quick else 10_000_000)
    print(f"# codec.entropy benchmark: {n:,} symbols per workload, best of {args.repeat}, one thread, "
          f"{platform.processor() or platform.machine()}, constriction {constriction.__version__ if hasattr(constriction, '__version__') else '0.5.0'}")
    rows = run(n, args.repeat, args.skip_compressai)
    print(format_table(rows))
    print("ratio = codec.entropy / the faster raw engine (constriction per-table or compressai.ans) on the same "
          "workload and direction; target >= 0.8x. Target overhead on (a): <= 0.25 %.")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
