"""The shared vectors of the steps that exist in Python and in frontend/ondevice.js (vectors.py): the
Python code still gives the committed answers, and the JavaScript module gives them too."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.ondevice.vectors import FILE, build


def test_the_python_code_gives_the_committed_answers() -> None:
    # A change on the Python side must be carried to ondevice.js: regenerate, and the JS test then checks it.
    assert json.loads(json.dumps(build())) == json.loads(FILE.read_text()), (
        "python -m tests.ondevice.vectors, then port the change"
    )


def test_the_javascript_module_gives_the_same_answers() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the JavaScript side runs in the browser tests too)")
    run = subprocess.run(
        [node, "--test", str(FILE.with_name("vectors.test.mjs"))], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
