"""What each command makes a user pay for, checked in fresh interpreters: `--help` and a typo
load no torch, Lightning or W&B; `fit` never needs the sweep engine; no Lightning warning about
the arguments it is given; `prepare` runs where `fcntl` does not exist (Windows)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ENV, REPO, fit_args, prepare_command, run

HEAVY = ("torch", "lightning", "sweeps", "wandb")
MARKER = "IMPORTED="


def imported_after(code: str) -> list[str]:
    """The heavy modules (and `avdisentangle.sweep`) in sys.modules after `code` ran in a fresh interpreter."""
    report = (
        "import json, sys\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m == 'avdisentangle.sweep')\n"
        f"print({MARKER!r} + json.dumps(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], cwd=REPO, env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1].removeprefix(MARKER))


def test_help_usage_and_unknown_commands_import_nothing_heavy():
    code = (
        "from avdisentangle.__main__ import main\n"
        "assert main(['--help']) == 0 and main([]) == 2 and main(['no-such-command']) == 2\n"
    )
    assert imported_after(code) == []


def test_the_fit_path_does_not_import_the_sweep_engine():
    code = (
        "import avdisentangle.lightning_cli\n"
        "from avdisentangle.cli import main\n"
        "try:\n    main(['fit', '--help'])\n"
        "except SystemExit as exit_:\n    assert exit_.code in (0, None)\n"
    )
    assert not [name for name in imported_after(code) if name.startswith(("sweeps", "avdisentangle.sweep"))]


def test_fit_prints_no_warning_about_its_own_arguments(tiny_corpus, tmp_path):
    """`python -m avdisentangle fit ...` hands LightningCLI the arguments it got; Lightning must not
    warn that `args` and sys.argv are both given (`--print_config` parses the way a run does)."""
    result = run([*fit_args(tiny_corpus, tmp_path), "--print_config"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "args parameter is intended" not in result.stdout + result.stderr


def test_prepare_runs_without_fcntl(tiny_corpus, tmp_path):
    """The cache lock is `filelock`'s: a platform without `fcntl` (Windows) still prepares."""
    code = "import sys\nsys.modules['fcntl'] = None\nfrom avdisentangle.cli import main\nsys.exit(main(sys.argv[1:]))"
    args = prepare_command(tiny_corpus, f"--data.cache_dir={tmp_path / 'cache'}", "--data.prepare_workers=0")[3:]
    result = run([sys.executable, "-c", code, *args], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "kept 48 clips, refused 0" in result.stdout
