"""`posthouse tracker` says clearly what is missing instead of failing obscurely."""
import sys

from posthouse.cli import main


def test_tracker_command_without_accounts_part(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "posthouse.accounts.store", None)     # as if not built
    assert main(["--data-dir", str(tmp_path), "tracker"]) == 1
    assert "accounts part is missing" in capsys.readouterr().err


def test_tracker_command_registered(capsys):
    try:
        main(["tracker", "--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "lease" in capsys.readouterr().out
