"""env.json: where the code came from (git commit, dirty flag) and what it ran on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch

import sparsetrain
from sparsetrain.train import envinfo
from sparsetrain.train.seed import restore_rng_states, rng_states, set_seed

CHECKOUT = Path(sparsetrain.__file__).resolve().parents[1]


def test_env_records_versions_device_seed_and_command():
    env = envinfo.collect(5, torch.device("cpu"), ["run", "r.yaml"])
    assert env["torch"] == torch.__version__ and env["seed"] == 5
    assert env["gpu"] is None and env["device"] == "cpu"
    assert env["command"][1:] == ["run", "r.yaml"]


@pytest.mark.skipif(not (CHECKOUT / ".git").exists(), reason="not a git checkout")
def test_the_git_commit_is_the_checkouts_head():
    head = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    info = envinfo.git_info()
    assert re.fullmatch(r"[0-9a-f]{40}", info["commit"]) and info["commit"] == head
    assert isinstance(info["dirty"], bool)


def test_set_seed_returns_its_seed_and_makes_draws_repeat():
    assert set_seed(11) == 11
    first = torch.rand(3)
    set_seed(11)
    assert torch.equal(torch.rand(3), first)


def test_restored_rng_states_repeat_the_same_draws():
    set_seed(3)
    saved = rng_states()
    first = torch.rand(4)
    restore_rng_states(saved)
    assert torch.equal(torch.rand(4), first)
