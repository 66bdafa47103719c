"""Build the golden inputs and bytes. The checked-in .bin/.cdc files pin the entropy stream and container formats:
run this only when a format change is deliberate (and bump the format version). Files of earlier versions stay:
``container_v1.cdc`` must be refused with a message naming its version; ``container_v2.cdc`` and
``entropy_v1.bin`` (codec 0.1) must still decode."""

import sys
from pathlib import Path

import numpy as np

from codec.bitstream import Header, Payload, pack, symbols_checksum
from codec.entropy import CdfTables, encode

HERE = Path(__file__).resolve().parent


def golden_inputs():
    tables = CdfTables.from_pmfs([[0.05, 0.2, 0.5, 0.2, 0.05], [0.25, 0.25, 0.25, 0.25], [0.9, 0.1]],
                                 [-2, 0, 5], precision=12, tail_mass=[0.01, 0.001, 0.05])
    idx = np.array([0, 0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1] * 4, dtype=np.int32)
    vals = np.array([-2, 2, 3, 5, 0, 0, 6, 40, -7, 2**31 - 1, -(2**31), 1] * 4, dtype=np.int32)
    return tables, idx, vals


def golden_entropy_bytes() -> bytes:
    tables, idx, vals = golden_inputs()
    return encode(vals, idx, tables)


def golden_container_bytes() -> bytes:
    tables, idx, vals = golden_inputs()
    header = Header(codec="test/golden", model="golden-v1", modality="image",
                    geometry={"height": 4, "width": 12, "channels": 1},
                    checkpoint_fingerprint=bytes(range(16)), table_fingerprint=tables.fingerprint_bytes,
                    symbols_checksum=symbols_checksum(vals))
    payload = Payload(streams={"y": golden_entropy_bytes(), "side": b"\x01\x02"}, ints={"shape": (4, 12)})
    return pack(header, payload)


if __name__ == "__main__":
    (HERE / "entropy_v2.bin").write_bytes(golden_entropy_bytes())
    (HERE / "container_v3.cdc").write_bytes(golden_container_bytes())
    print("wrote golden files", file=sys.stderr)
