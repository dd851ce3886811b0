"""The second half of the SIGKILL trials (see test_crash.py), in a file of its own so that it runs on
another pytest-xdist worker at the same time as the first half."""
from __future__ import annotations

import pytest
from support.reliability import scale

from .test_crash import run_trials

pytestmark = pytest.mark.slow


def test_sigkill_at_random_instants_second_half(repo, tmp_path):
    run_trials(repo, tmp_path, scale(200, 1000) - scale(200, 1000) // 2, part=1)
