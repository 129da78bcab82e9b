"""`posthouse contact ...` and `posthouse private ...` on both databases."""
from __future__ import annotations

import json

from posthouse.cli import main
from posthouse.crm.service import Crm

from .factlib import message, seen


def run(capsys, config, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["--config", config, *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def config_for(engine, tmp_path) -> str:
    path = tmp_path / "posthouse.toml"
    lines = [f'data_dir = "{tmp_path}"']
    if engine.dialect.name != "sqlite":
        lines.append(f'database_url = "{engine.url.render_as_string(hide_password=False)}"')
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_contact_commands(crm_engine, tmp_path, capsys):
    config = config_for(crm_engine, tmp_path)
    Crm(crm_engine).apply([seen(message(frm="Jane <jane@acme.com>", subject="Offer"))])    # earlier mail
    rc, out, _ = run(capsys, config, "contact", "add", "--name", "Jane Doe", "--email", "Jane@Acme.com")
    assert rc == 0
    jane = json.loads(out)
    assert jane["emails"][0]["address"] == "jane@acme.com" and jane["last_name"] == "Doe"
    rc, out, _ = run(capsys, config, "contact", "add", "--name", "J2", "--email", "j2@initech.com", "--tag", "lead",
                     "--phone", "+1 5", "--company", "Initech", "--title", "CTO", "--notes", "hi")
    j2 = json.loads(out)
    assert (j2["company"]["name"], j2["tags"], j2["title"]) == ("Initech", ["lead"], "CTO")
    rc, out, err = run(capsys, config, "contact", "add", "--name", "X", "--email", "not-an-address")
    assert rc == 1 and "not an email address" in err and out == ""
    rc, out, _ = run(capsys, config, "contact", "list")
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(jane["id"]), str(j2["id"])]
    rc, out, _ = run(capsys, config, "contact", "list", "--email", "JANE@acme.com", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [jane["id"]]
    rc, out, _ = run(capsys, config, "contact", "list", "--tag", "lead")
    assert out.startswith(f"{j2['id']}\t")
    rc, out, _ = run(capsys, config, "contact", "show", str(jane["id"]))
    shown = json.loads(out)
    assert [(a["subject"], a["direction"]) for a in shown["activities"]] == [("Offer", "received")]
    rc, out, _ = run(capsys, config, "contact", "edit", str(jane["id"]), "--phone", "42", "--add-email",
                     "jd@gmail.com", "--opted-out", "yes", "--tag", "a", "--tag", "b")
    edited = json.loads(out)
    assert (edited["phone"], edited["opted_out"], edited["tags"], len(edited["emails"])) == ("42", True, ["a", "b"], 2)
    rc, out, _ = run(capsys, config, "contact", "merge", str(jane["id"]), str(j2["id"]))
    assert rc == 0 and len(json.loads(out)["emails"]) == 3
    rc, _, err = run(capsys, config, "contact", "show", str(j2["id"]))
    assert rc == 1 and f"no contact {j2['id']}" in err
    rc, out, _ = run(capsys, config, "contact", "delete", str(jane["id"]))
    assert rc == 0


def test_private_commands(crm_engine, tmp_path, capsys):
    config = config_for(crm_engine, tmp_path)
    assert run(capsys, config, "private", "add", "--owner", "alice", "Doc@Clinic.example")[0] == 0
    assert run(capsys, config, "private", "add", "lawyers.example")[0] == 0
    assert run(capsys, config, "private", "list", "--owner", "alice")[1] == "doc@clinic.example\n"
    assert run(capsys, config, "private", "list")[1] == "lawyers.example\n"
    rc, _, err = run(capsys, config, "private", "remove", "nope.example")
    assert rc == 1 and "not on the private list" in err
    assert run(capsys, config, "private", "remove", "lawyers.example")[0] == 0
    assert run(capsys, config, "private", "list")[1] == ""
    rc, _, err = run(capsys, config, "private", "add", "no such thing")
    assert rc == 1 and "not a domain" in err
