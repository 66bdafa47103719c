import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run the long forms (training runs, full-dataset evaluation)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("CODEC_RUNSLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long form: run with --runslow (make test-long)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
