"""The command line shows a user's error as one line and a bug with its traceback."""

from __future__ import annotations

import importlib

import pytest
from click.testing import CliRunner

from alcycle.cli import main
from alcycle.errors import AlcycleError
from alcycle.params import ParamsError


def test_a_user_error_is_one_line_and_exit_status_1(tmp_path):
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "train"])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'params.yaml'}: not found; run alcycle in a project folder " \
                            "(see `alcycle init`)\n"
    assert isinstance(result.exception, SystemExit)


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    def broken(layout, params):
        raise KeyError("a bug, not the user's input")

    monkeypatch.setattr(importlib.import_module("alcycle.stages.train"), "run", broken)
    monkeypatch.setattr("alcycle.cli.load_params", lambda path: None)
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "train"])
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)  # click did not turn it into a message
    assert "Error:" not in result.output
    with pytest.raises(KeyError):  # and main(), run as the console script, lets it through
        main(["--project", str(tmp_path), "train"], standalone_mode=True)


@pytest.mark.parametrize("module, name", [
    ("alcycle.annotations.records", "AnnotationError"), ("alcycle.cycle", "CycleError"),
    ("alcycle.oracle", "OracleError"), ("alcycle.params", "ParamsError"), ("alcycle.review", "ReviewError"),
    ("alcycle.sources", "SourceError"),
])
def test_every_domain_error_is_a_user_error(module, name):
    assert issubclass(getattr(importlib.import_module(module), name), AlcycleError)


def test_a_user_error_is_still_the_builtin_it_replaced():
    assert issubclass(ParamsError, ValueError)  # callers that caught ValueError still do
