"""ansible-runner driver and progress lines, on real playbook runs against this machine (local connection).

The playbooks here are tiny and made for the test (ok, changed, skipped, failed, ignored, retried tasks on two
hosts); what is checked is the path users rely on: events -> one line per task and host -> stats and failures.
"""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

import pytest

from pinnprov.cli import main
from pinnprov.deploy.progress import Progress, failure_message, short_host
from pinnprov.deploy.runner import ANSIBLE_DIR_ENV, find_ansible_dir, run_playbook

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"

PLAYBOOK = """\
- name: Exercise every kind of result
  hosts: all
  gather_facts: false
  tasks:
    - name: Report nothing to change
      ansible.builtin.command: "true"
      changed_when: false
    - name: Write a marker file
      ansible.builtin.copy:
        dest: "{{ marker_dir }}/{{ inventory_hostname }}.txt"
        content: "{{ inventory_hostname }}\\n"
        mode: "0644"
    - name: Skip on every host
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Fail but carry on
      ansible.builtin.command: "false"
      ignore_errors: true
      changed_when: false
    - name: Retry once before succeeding
      ansible.builtin.shell: >-
        test -e {{ marker_dir }}/{{ inventory_hostname }}.retry
        || { touch {{ marker_dir }}/{{ inventory_hostname }}.retry; exit 1; }
      register: attempt
      until: attempt.rc == 0
      retries: 2
      delay: 0
      changed_when: false
    - name: Fail on the second host only
      ansible.builtin.fail:
        msg: "second host refuses: disk full"
      when: inventory_hostname == 'node-b'
"""


def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent(f"""\
        all:
          vars:
            ansible_connection: local
            ansible_python_interpreter: {sys.executable}
            marker_dir: {tmp_path}
          hosts:
            node-a.lille.grid5000.fr:
            node-b:
        """))
    return path


@pytest.mark.slow
def test_progress_lines_stats_and_failures_of_a_real_run(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    out = io.StringIO()
    progress = Progress(stream=out)
    result = run_playbook(playbook, inventory=inventory(tmp_path), ansible_dir=ANSIBLE_DIR, progress=progress,
                          extravars={"unused_but_passed": "x"}, timeout=300)
    lines = out.getvalue().splitlines()

    assert not result.ok and result.status == "failed"
    assert lines[0] == "PLAY  Exercise every kind of result"
    assert "  ok       node-a       Report nothing to change" in lines
    assert "  changed  node-a       Write a marker file" in lines
    assert "  changed  node-b       Write a marker file" in lines
    assert not any("Skip on every host" in line for line in lines)  # skipped tasks stay quiet by default
    assert any(line.startswith("  ignored  node-a       Fail but carry on") for line in lines)
    assert any(line.startswith("  waiting  node-a       Retry once before succeeding (attempt 1 of 3)")
               for line in lines)
    assert "  FAILED   node-b       Fail on the second host only: second host refuses: disk full" in lines

    assert [(f.host, f.task, f.message) for f in result.failures] == [
        ("node-b", "Fail on the second host only", "second host refuses: disk full")]
    assert result.stats["changed"] == {"node-a.lille.grid5000.fr": 1, "node-b": 1}
    assert result.stats["failures"] == {"node-b": 1}
    assert (tmp_path / "node-a.lille.grid5000.fr.txt").read_text() == "node-a.lille.grid5000.fr\n"
    assert progress.recap() == [
        "  node-a       ok=4 changed=1 failed=0 unreachable=0 skipped=2 ignored=1",
        "  node-b       ok=4 changed=1 failed=1 unreachable=0 skipped=1 ignored=1",
    ]

    # A second run, on the first host only, in check mode: nothing changes and it succeeds.
    quiet = Progress(stream=io.StringIO(), show_skipped=True)
    again = run_playbook(playbook, inventory=inventory(tmp_path), ansible_dir=ANSIBLE_DIR, progress=quiet,
                         check=True, limit="node-a*", skip_tags=["never-used"], timeout=300)
    assert again.ok and again.changed() == 0
    assert any(r.status == "skipped" and r.task == "Skip on every host" for r in quiet.results)
    assert {r.host for r in quiet.results} == {"node-a.lille.grid5000.fr"}


@pytest.mark.slow
def test_ansible_errors_before_any_task_come_back_as_one_line(tmp_path: Path) -> None:
    playbook = tmp_path / "broken.yml"
    playbook.write_text("- name: Broken\n  hosts: all\n  tasks:\n    - name: No module\n      no_such_module_x: {}\n")
    result = run_playbook(playbook, inventory=inventory(tmp_path), ansible_dir=ANSIBLE_DIR,
                          progress=Progress(stream=io.StringIO()), timeout=300)
    assert not result.ok and not result.failures
    assert "no_such_module_x" in result.error


def test_missing_playbook_inventory_and_ansible_dir_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="no such inventory"):
        run_playbook("site.yml", inventory=tmp_path / "none.yml", ansible_dir=ANSIBLE_DIR)
    with pytest.raises(FileNotFoundError, match="nope.yml: no such playbook"):
        run_playbook("nope.yml", inventory=inventory(tmp_path), ansible_dir=ANSIBLE_DIR)
    with pytest.raises(FileNotFoundError, match="no site.yml here"):
        find_ansible_dir(tmp_path)
    monkeypatch.setenv(ANSIBLE_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no site.yml here"):
        find_ansible_dir()
    monkeypatch.delenv(ANSIBLE_DIR_ENV)
    assert find_ansible_dir() == ANSIBLE_DIR


def test_failure_message_prefers_the_informative_line() -> None:
    assert failure_message({"msg": "first line\nsecond"}) == "first line"
    assert failure_message({"stderr": "Traceback\n  File x\nValueError: bad"}) == "ValueError: bad"
    assert failure_message({"rc": 3}) == "exit status 3"
    assert short_host("chifflot-1.lille.grid5000.fr") == "chifflot-1"
    assert short_host("10.0.0.1") == "10.0.0.1"


def test_deploy_cli_refuses_inconsistent_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "--purge", "--inventory", str(inventory(tmp_path))]) == 2
    assert "--purge only goes with --teardown" in capsys.readouterr().err
    assert main(["deploy", "--inventory", str(tmp_path / "absent.yml")]) == 2
    assert "absent.yml: no such file" in capsys.readouterr().err


def site_inventory(tmp_path: Path) -> Path:
    """The test host in every group site.yml uses."""
    path = tmp_path / "site-hosts.yml"
    groups = "\n".join(f"    {group}: {{hosts: {{testhost: }}}}"
                       for group in ("monetdb", "elasticsearch", "kibana", "collector", "trainers"))
    path.write_text(f"all:\n  hosts:\n    testhost:\n      ansible_connection: local\n"
                    f"      ansible_python_interpreter: {sys.executable}\n  children:\n{groups}\n")
    return path


@pytest.mark.slow
def test_deploy_command_runs_site_preflight_with_generated_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pinnprov.deploy.secrets import SECRETS

    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    secrets = tmp_path / "secrets.env"
    code = main(["deploy", "--inventory", str(site_inventory(tmp_path)), "--check", "--tags", "preflight",
                 "--secrets", str(secrets)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    # Every role's argument validation and preflight ran and passed with the generated secrets.
    assert "  ok       localhost    Check that every secret is set" in out.out
    for check in ("Check MonetDB's passwords", "Check Elasticsearch's passwords", "Check Kibana's secrets",
                  "Check that a non-loopback collector has a token", "Check the collector endpoint the runs export to"):
        assert f"  ok       testhost     {check}" in out.out
    assert "check mode: 0 task(s) would change something; nothing was changed" in out.out
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert "wheel: " in out.err and (tmp_path / "cache" / "pinnprov" / "wheels").is_dir()
    for value in (line.split("=", 1)[1] for line in secrets.read_text().splitlines() if "=" in line):
        assert value not in out.out + out.err  # no secret is ever printed


@pytest.mark.slow
def test_site_refuses_to_run_without_its_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pinnprov.deploy.secrets import SECRETS

    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PINNPROV_COLLECTOR_TOKEN", "t" * 20)
    result = run_playbook("site.yml", inventory=site_inventory(tmp_path), ansible_dir=ANSIBLE_DIR, check=True,
                          extravars={"pinnprov_wheel": "/nonexistent.whl"}, progress=Progress(stream=io.StringIO()),
                          timeout=300)
    assert not result.ok
    [failure] = result.failures
    assert failure.host == "localhost"
    assert failure.message.startswith("missing secrets: PINNPROV_MONETDB_ADMIN_PASSWORD, PINNPROV_MONETDB_PASSWORD,")
    assert "PINNPROV_COLLECTOR_TOKEN" not in failure.message


def test_summary_names_the_tunnel_urls_and_query_commands() -> None:
    from pinnprov.deploy.summary import Stack, summary_lines

    lines = "\n".join(summary_lines(Stack(services="chiclet-3.lille.grid5000.fr",
                                          trainers=("chifflot-1.lille.grid5000.fr",),
                                          proxy_jump="jdoe@access.grid5000.fr", secrets_file=Path("/s.env"),
                                          generated=("PINNPROV_COLLECTOR_TOKEN",))))
    assert ("ssh -J jdoe@access.grid5000.fr -N -L 5601:127.0.0.1:5601 -L 50000:127.0.0.1:50000 "
            "-L 8787:127.0.0.1:8787 root@chiclet-3.lille.grid5000.fr") in lines
    assert "https://localhost:5601" in lines and "PINNPROV_ELASTIC_PASSWORD of /s.env" in lines
    assert "http://chiclet-3.lille.grid5000.fr:4318 (OTLP/HTTP)" in lines
    assert "curl -s http://127.0.0.1:4318/healthz" in lines
    assert "mclient -d pinnprov -s \"'SELECT run_name, status, epochs FROM run'\"" in lines
    assert "pinnprov query epochs --run latest --store monetdb://pinnprov:$PINNPROV_MONETDB_PASSWORD@127.0.0.1" in lines
    assert "root@chifflot-1.lille.grid5000.fr journalctl -u 'pinnprov-dask-worker-*' -n 20" in lines
    assert ("pinnprov sweep --scheduler tls://chiclet-3.lille.grid5000.fr:8786 --tls-ca-file "
            "~/.config/pinnprov/dask-tls/ca.pem --tls-cert ~/.config/pinnprov/dask-tls/client.pem") in lines
    assert "generated PINNPROV_COLLECTOR_TOKEN into /s.env" in lines


def test_extra_vars_are_json_or_strings_and_never_secrets() -> None:
    from pinnprov.cli.commands.deploy import parse_extra_vars

    assert parse_extra_vars(['trainer_environment={"TF_FORCE_GPU_ALLOW_GROWTH": "true"}',
                             "trainer_unit_prefix=sweep-2", "collector_http_port=4319"]) == {
        "trainer_environment": {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}, "trainer_unit_prefix": "sweep-2",
        "collector_http_port": 4319}
    with pytest.raises(ValueError, match="secrets go in the environment"):
        parse_extra_vars(["monetdb_admin_password=hunter2hunter2"])
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_extra_vars(["no-equals-sign"])
