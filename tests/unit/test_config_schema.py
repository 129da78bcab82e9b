"""The config file is checked against one schema (config_schema.py): types,
ranges and enums, every problem named as `[section] key`; defaults come from
there, and `config show` prints what the server runs with."""
from __future__ import annotations

import dataclasses

import pytest

from posthouse import config_schema as schema
from posthouse.config import Config, ConfigError, ConfigFileMissing, default_data_dir, find_config_file
from posthouse.usernames import check_user_name


def load(tmp_path, text: str) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return Config.load(str(path))


def problems(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    return e.value.problems


def test_the_issues_examples_are_refused_naming_the_key(tmp_path):
    assert problems(tmp_path, 'max_message_size = "ten megs"\n') == [
        'max_message_size = "ten megs": not a size: \'ten megs\' (say 1048576, 500K, 20M or 2G)']
    [port] = problems(tmp_path, "[imap]\nport = 99999\n")
    assert port.startswith("[imap] port = 99999:") and "65535" in port
    [fsync] = problems(tmp_path, 'fsync = "yes"\n')
    assert fsync.startswith('fsync = "yes":') and "boolean" in fsync


def test_every_problem_at_once_one_line_each(tmp_path):
    found = problems(tmp_path, '[imap]\nprot = 143\n[relay]\ntls = "ssl"\nport = 0\n[quota]\nmessages = -1\n'
                               '[imapp]\nport = 1\n')
    assert found[0] == "unknown key [imap] prot (did you mean port?)"
    assert found[1] == "unknown section [imapp] (did you mean [imap]?)"
    assert any(p.startswith('[relay] tls = "ssl"') for p in found)
    assert any(p.startswith("[relay] port = 0") for p in found)
    assert any(p.startswith("[quota] messages = -1") for p in found)
    assert all("\n" not in p for p in found) and len(found) == 5


def test_types_are_strict(tmp_path):
    for text in ('[imap]\nport = "143"\n', "[imap]\nport = true\n", "[imap]\ntls_port = true\n",
                 "store_process = 1\n", 'idle_timeout = "30"\n', "parse_processes = 1.5\n",
                 'plaintext_auth = "sometimes"\n', 'domains = ["a b"]\n', 'domains = "example.com"\n',
                 "[submission]\nsave_sent = 0\n", 'log_level = "LOUD"\n'):
        assert len(problems(tmp_path, text)) == 1, text


def test_sizes_ports_and_defaults(tmp_path):
    cfg = load(tmp_path, 'max_message_size = "10M"\nmin_free_space = "1G"\nidle_timeout = 5\nlog_level = "debug"\n'
                         '[imap]\ntls_port = false\n[quota]\nstorage = "2G"\n[limits]\nlogin_timeout = 5.5\n')
    assert (cfg.max_message_size, cfg.min_free_space, cfg.quota_storage) == (10 << 20, 1 << 30, 2 << 30)
    assert (cfg.imap_tls_port, cfg.imap_port, cfg.idle_timeout, cfg.login_timeout) == (None, 1143, 5.0, 5.5)
    assert cfg.log_level == "DEBUG"


def test_the_schemas_defaults_are_the_dataclasss():
    """Config(**opts) (the tests, the code) and a config file start from the same defaults;
    only where the file's default depends on the machine do they differ."""
    from_file = dataclasses.asdict(Config.load(None))
    plain = dataclasses.asdict(Config())
    for key in set(plain) - {"data_dir", "domains", "default_mailboxes"}:
        assert from_file[key] == plain[key], key
    assert [list(m) for m in plain["default_mailboxes"]] == from_file["default_mailboxes"]
    assert {f.name for f in dataclasses.fields(Config)} == schema.declared_flat_names()


def test_config_show_is_a_config_that_loads_the_same(tmp_path):
    cfg = load(tmp_path, '[imap]\nport = 143\ntls_port = false\n[quota]\nstorage = "1G"\n'
                         '[tls]\ncert = "/c.pem"\nkey = "/k.pem"\n')
    text = schema.render(dataclasses.asdict(cfg))
    again = load(tmp_path, text)
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)
    assert "[imap]\nhost = \"127.0.0.1\"\nport = 143\ntls_port = false\n" in text


def test_default_domains_are_the_hostname_and_localhost(tmp_path):
    cfg = load(tmp_path, 'hostname = "Mail.Example.org"\n')
    assert cfg.domains == ["mail.example.org", "localhost"]
    assert cfg.serves("bob@localhost")
    assert load(tmp_path, 'domains = ["example.com"]\n').domains == ["example.com"]
    assert load(tmp_path, "domains = []\n").domains == []


def test_one_data_directory_rule(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTHOUSE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert Config.load(None).data_dir == str(tmp_path / "xdg" / "posthouse") == default_data_dir()
    monkeypatch.setenv("POSTHOUSE_DATA_DIR", "from-env")
    assert Config.load(None).data_dir == str(tmp_path / "from-env")
    assert load(tmp_path, 'data_dir = "/from/file"\n').data_dir == "/from/file"
    monkeypatch.chdir("/")
    assert load(tmp_path, 'data_dir = "beside"\n').data_dir == str(tmp_path / "beside")
    path = tmp_path / "c.toml"
    assert Config.load(str(path), data_dir="flag").data_dir == "/flag"     # (run from /)


def test_the_config_file_is_found_by_one_rule(tmp_path, monkeypatch):
    monkeypatch.delenv("POSTHOUSE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    found = find_config_file(None)
    assert found in (None, "/etc/posthouse/posthouse.toml")
    (tmp_path / "xdg" / "posthouse").mkdir(parents=True)
    (tmp_path / "xdg" / "posthouse" / "posthouse.toml").write_text("")
    assert find_config_file(None) == str(tmp_path / "xdg" / "posthouse" / "posthouse.toml")
    monkeypatch.setenv("POSTHOUSE_CONFIG", "/env.toml")
    assert find_config_file(None) == "/env.toml"
    assert find_config_file("flag.toml") == "flag.toml"
    with pytest.raises(ConfigFileMissing, match="no config file /env.toml"):
        Config.load(find_config_file(None))


def test_user_names():
    for good in ("alice", "bob.smith", "o'neil", "dora@example.com", "Zoë"):
        check_user_name(good, ["example.com"])
    for bad in ("", "bad name@x", "a\tb", "a\x00b", "a\u200bb", "a@other.example", "@example.com",
                "a@b@example.com", "x" * 300):
        with pytest.raises(ValueError):
            check_user_name(bad, ["example.com"])
