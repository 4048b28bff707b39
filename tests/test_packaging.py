"""Installing the package: setuptools reads `pyproject.toml` without a deprecation, so `make setup` prints none."""

from __future__ import annotations

import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution
from setuptools.warnings import SetuptoolsDeprecationWarning

REPO = Path(__file__).resolve().parents[1]


def test_the_project_metadata_reads_without_setuptools_deprecations(monkeypatch):
    monkeypatch.chdir(REPO)  # `license-files` are found from the project's folder, as pip builds it
    with warnings.catch_warnings():
        warnings.simplefilter("error", SetuptoolsDeprecationWarning)
        metadata = apply_configuration(Distribution(), "pyproject.toml").metadata
    assert metadata.license_expression == "MIT" and metadata.license_files == ["LICENSE"]
