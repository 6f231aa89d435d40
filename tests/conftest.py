"""Test-session settings.

The Triton kernels run compiled on the GPU when there is one, and in Triton's
interpreter on CPU tensors otherwise (``tests/cases.TRITON_DEVICE`` says which).
TRITON_INTERPRET must be set before triton is first imported, so it is decided here,
once, for the whole session; set TRITON_INTERPRET=1 yourself to interpret on a GPU
machine too.

``make test`` runs the tests in parallel processes (pytest-xdist, ``-n``): each worker
then uses one torch thread, so the workers do not oversubscribe the cores.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

from cases import BACKEND_DEVICES  # noqa: E402  (reads TRITON_INTERPRET, set above)
from spp_triton.registry import BACKENDS  # noqa: E402  (imports no triton)

_passed = 0


@pytest.fixture(params=list(BACKEND_DEVICES))
def backend_entry(request):
    """(registry entry, the device its tests run on) for every backend in
    ``cases.BACKEND_DEVICES``; skipped where the backend cannot run."""
    entry, device = BACKENDS[request.param], BACKEND_DEVICES[request.param]
    reason = entry.unusable(device)
    if reason:
        pytest.skip(reason)
    return entry, device


def pytest_report_header(config):
    where = "Triton's interpreter (CPU tensors)" if os.environ.get("TRITON_INTERPRET") == "1" else \
        f"compiled, on {torch.cuda.get_device_name()}"
    return f"spp_triton: Triton kernels run {where}"


def pytest_runtest_logreport(report):
    global _passed
    if report.when == "call" and report.passed:
        _passed += 1


def pytest_sessionfinish(session, exitstatus):
    # A run in which nothing passed (all skipped, or none collected) is a failure.
    if exitstatus == 0 and _passed == 0 and not session.config.option.collectonly:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
