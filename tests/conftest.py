"""Test-session settings.

Without a GPU the Triton kernels run in Triton's interpreter; TRITON_INTERPRET must be
set before triton is first imported, so it is set here, once, for the whole session.
"""
import os

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")

_passed = 0


def pytest_runtest_logreport(report):
    global _passed
    if report.when == "call" and report.passed:
        _passed += 1


def pytest_sessionfinish(session, exitstatus):
    # A run in which nothing passed (all skipped, or none collected) is a failure.
    if exitstatus == 0 and _passed == 0 and not session.config.option.collectonly:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
