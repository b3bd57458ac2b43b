"""The shipped `ray up` files pass the checks `ray up` runs before contacting a cloud, and bad edits fail them.

Offline: Ray's own ``prepare_config`` + ``validate_config`` (no boto3, no credentials, no network). Mutations work on a
``copy.deepcopy`` of the loaded YAML; nothing is written outside ``tmp_path``.
"""
from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from seminas_ray.cluster_config import (
    ClusterConfigError,
    exposure_problems,
    install_pin_problems,
    load_cluster_yaml,
    main,
    unknown_ray_start_flags,
    validate_cluster_config,
    validate_cluster_file,
)

REPO = Path(__file__).resolve().parents[1]
AWS_FILE = REPO / "cluster" / "cluster.yaml"
LOCAL_FILE = REPO / "cluster" / "local.yaml"
PYPROJECT = REPO / "pyproject.toml"
CLUSTER_FILES = [AWS_FILE, LOCAL_FILE]


@pytest.fixture(scope="module")
def aws_raw() -> dict:
    return load_cluster_yaml(AWS_FILE)


@pytest.fixture(scope="module")
def local_raw() -> dict:
    return load_cluster_yaml(LOCAL_FILE)


def _ray_start_commands(config: dict) -> list[str]:
    cmds = list(config.get("head_start_ray_commands") or []) + list(config.get("worker_start_ray_commands") or [])
    return [c for c in cmds if "ray start" in c]


# ---------------------------------------------------------------- the shipped files pass, as `ray up` would see them


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_shipped_files_pass_ray_up_validation(path: Path) -> None:
    prepared = validate_cluster_file(path)
    assert prepared["head_node_type"] in prepared["available_node_types"]
    # prepare_config merged the common setup into both lists, as ray up does.
    assert prepared["head_setup_commands"][: len(prepared["setup_commands"])] == prepared["setup_commands"]
    assert prepared["worker_setup_commands"][: len(prepared["setup_commands"])] == prepared["setup_commands"]
    assert "cluster_synced_files" in prepared  # added by the defaults; validate_config needs it


def test_aws_node_types(aws_raw: dict) -> None:
    prepared = validate_cluster_config(aws_raw)
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "no trials, actors or tasks on the head"
    assert head["max_workers"] == 0
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    cpu = [t for name, t in types.items() if name != prepared["head_node_type"] and not t["resources"].get("GPU")]
    assert len(gpu) == 1 and gpu[0]["resources"]["GPU"] == 1 and gpu[0]["resources"]["supernet"] == 1
    assert len(cpu) == 1 and cpu[0]["resources"]["CPU"] >= 1
    assert sum(t["min_workers"] for t in types.values()) <= prepared["max_workers"]
    assert prepared["idle_timeout_minutes"] > 0


def test_local_file_becomes_one_node_type_sized_by_worker_ips(local_raw: dict) -> None:
    assert "available_node_types" not in local_raw
    prepared = validate_cluster_config(local_raw)
    (node_type,) = prepared["available_node_types"].values()
    n_ips = len(local_raw["provider"]["worker_ips"])
    assert node_type["min_workers"] == node_type["max_workers"] == n_ips
    assert {"ssh_user", "ssh_private_key"} <= set(prepared["auth"])


# ---------------------------------------------------------------- bad edits are rejected with a clear message


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_typo_key_is_rejected(path: Path) -> None:
    bad = copy.deepcopy(load_cluster_yaml(path))
    bad["setup_comands"] = bad.pop("setup_commands")
    with pytest.raises(ClusterConfigError, match="setup_comands"):
        validate_cluster_config(bad, source=path.name)


def test_fractional_gpu_node_resource_is_rejected(aws_raw: dict) -> None:
    bad = copy.deepcopy(aws_raw)
    bad["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.25
    with pytest.raises(ClusterConfigError, match=r"gpu_worker/resources/GPU.*0\.25 is not of type 'integer'"):
        validate_cluster_config(bad)


def test_max_workers_below_sum_of_min_workers_is_rejected(aws_raw: dict) -> None:
    bad = copy.deepcopy(aws_raw)
    bad["available_node_types"]["gpu_worker"]["min_workers"] = 3
    bad["available_node_types"]["cpu_worker"]["min_workers"] = 3
    bad["max_workers"] = 4
    with pytest.raises(ClusterConfigError, match="max_workers.*smaller than the sum of `min_workers`"):
        validate_cluster_config(bad)


def test_unknown_head_node_type_is_rejected(aws_raw: dict) -> None:
    bad = copy.deepcopy(aws_raw)
    bad["head_node_type"] = "hed"
    with pytest.raises(ClusterConfigError, match="head_node_type` must be one of `available_node_types"):
        validate_cluster_config(bad)


def test_node_types_in_on_prem_file_are_rejected(local_raw: dict, aws_raw: dict) -> None:
    bad = copy.deepcopy(local_raw)
    bad["available_node_types"] = copy.deepcopy(aws_raw["available_node_types"])
    with pytest.raises(ClusterConfigError, match="available_node_types is not supported for on-premise"):
        validate_cluster_config(bad)


def test_unreadable_or_non_mapping_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="missing.yaml"):
        validate_cluster_file(tmp_path / "missing.yaml")
    listy = tmp_path / "listy.yaml"
    listy.write_text("- just\n- a list\n")
    with pytest.raises(ClusterConfigError, match="listy.yaml.*mapping"):
        validate_cluster_file(listy)
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster_name: [unclosed\n")
    with pytest.raises(ClusterConfigError, match="broken.yaml: not valid YAML"):
        validate_cluster_file(broken)


# ---------------------------------------------------------------- the dashboard is never exposed


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_dashboard_not_exposed_in_file(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    # Parsed directly, independent of the helper: no rule mentions the dashboard port or the whole internet.
    for rule in ((raw["provider"].get("security_group") or {}).get("IpPermissions") or []):
        assert rule.get("IpProtocol") != "-1"
        assert not (rule.get("FromPort", 0) <= 8265 <= rule.get("ToPort", 0)), rule
        assert all(r.get("CidrIp") != "0.0.0.0/0" for r in rule.get("IpRanges", [])), rule
    for cmd in _ray_start_commands(raw):
        assert "0.0.0.0" not in cmd and "dashboard-host=::" not in cmd, cmd
    (head_start,) = [c for c in _ray_start_commands(raw) if "--head" in c]
    assert "--dashboard-host=127.0.0.1" in head_start
    # ...and the config ray up actually uses (defaults merged) passes the helper's lint.
    assert exposure_problems(validate_cluster_file(path)) == []


def test_exposure_lint_catches_what_ray_defaults_would_add(aws_raw: dict) -> None:
    # Without our own head_start_ray_commands, the AWS defaults start the dashboard on 0.0.0.0.
    no_start = copy.deepcopy(aws_raw)
    del no_start["head_start_ray_commands"]
    problems = exposure_problems(validate_cluster_config(no_start))
    assert len(problems) == 1 and "--dashboard-host=0.0.0.0" in problems[0]

    open_rule = copy.deepcopy(aws_raw)
    open_rule["provider"]["security_group"]["IpPermissions"] = [
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 9000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ]
    problems = exposure_problems(validate_cluster_config(open_rule))
    assert len(problems) == 1 and "8265 (dashboard)" in problems[0]

    everything = copy.deepcopy(aws_raw)
    everything["provider"]["security_group"]["IpPermissions"] = [
        {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}
    ]
    assert exposure_problems(validate_cluster_config(everything))


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_token_auth_on_every_node(path: Path) -> None:
    raw = load_cluster_yaml(path)
    assert raw["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    starts = _ray_start_commands(raw)
    assert len(starts) == 2
    for cmd in starts:
        assert re.search(r"\bRAY_AUTH_MODE=token\s+ray start\b", cmd), cmd


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_ray_start_flags_exist(path: Path) -> None:
    prepared = validate_cluster_file(path)
    assert unknown_ray_start_flags(prepared) == []
    typo = copy.deepcopy(prepared)
    typo["head_start_ray_commands"] = [c.replace("--dashboard-host", "--dashboard-hots")
                                       for c in typo["head_start_ray_commands"]]
    assert unknown_ray_start_flags(typo) == ["head_start_ray_commands[1]: `ray start` has no option --dashboard-hots"]


# ---------------------------------------------------------------- install pins agree with pyproject.toml


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_install_command_pins_match_pyproject(path: Path) -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    deps = list(project["dependencies"]) + list(project["optional-dependencies"]["tts"])  # torchaudio: in [tts]
    wanted = {Requirement(d).name: Requirement(d) for d in deps}
    installs = [c for c in load_cluster_yaml(path)["setup_commands"] if " -e " in c and "seminas_ray" in c]
    assert len(installs) == 1, "exactly one setup command installs the project"
    words = shlex.split(installs[0])
    have = {}
    for word in words:
        if "==" in word:
            req = Requirement(word)
            have[req.name] = req
    for name in ("torch", "torchaudio", "ray"):
        assert str(have[name].specifier) == str(wanted[name].specifier), name
        assert have[name].extras == wanted[name].extras, name
    assert install_pin_problems(validate_cluster_file(path), PYPROJECT) == []


def test_pin_drift_is_reported(aws_raw: dict) -> None:
    drift = copy.deepcopy(aws_raw)
    drift["setup_commands"] = [c.replace("torch==2.11.0", "torch==2.10.0") for c in drift["setup_commands"]]
    problems = install_pin_problems(validate_cluster_config(drift), PYPROJECT)
    assert len(problems) == 1 and "torch==2.10.0" in problems[0]


def test_release_tag_install_is_recognised(aws_raw: dict) -> None:
    # The variant the cluster.yaml comment suggests for deploying a tag instead of the working copy.
    tagged = copy.deepcopy(aws_raw)
    tagged["setup_commands"] = [
        c.replace('-e "$HOME/seminas_ray[all]"', '"seminas_ray[all] @ git+https://github.com/you/seminas_ray@v0.1.0"')
        for c in tagged["setup_commands"]
    ]
    assert install_pin_problems(validate_cluster_config(tagged), PYPROJECT) == []
    tagged["setup_commands"] = [c for c in tagged["setup_commands"] if "seminas_ray[all] @" not in c]
    with pytest.raises(ClusterConfigError, match="no setup command installs the project"):
        install_pin_problems(validate_cluster_config(tagged), PYPROJECT)


# ---------------------------------------------------------------- file_mounts and rsync behave as docs/cluster.md says


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_project_mounts_exist_in_repo_and_venv_is_excluded(path: Path) -> None:
    raw = load_cluster_yaml(path)
    relative = {remote: local for remote, local in raw["file_mounts"].items() if local.startswith("./")}
    assert "./pyproject.toml" in relative.values() and "./seminas_ray" in relative.values()
    for remote, local in relative.items():
        assert remote.startswith("~/seminas_ray/"), remote
        assert (REPO / local).exists(), f"{path.name}: file_mounts source {local} is not in the repository"
    assert ".venv" in raw["rsync_exclude"]


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_rsync_excludes_keep_results_downloadable(tmp_path: Path, aws_raw: dict) -> None:
    # The same filter arguments Ray builds (command_runner._create_rsync_filter_args), run with local rsync.
    args = [a for x in aws_raw["rsync_exclude"] for a in ("--exclude", x)]
    args += [a for f in aws_raw["rsync_filter"] for a in ("--filter", f"dir-merge,- {f}")]
    project = tmp_path / "remote" / "seminas_ray"
    (project / "runs" / "nasbench-1").mkdir(parents=True)
    (project / "runs" / "nasbench-1" / "report.md").write_text("best 0.94\n")
    (project / ".venv" / "lib").mkdir(parents=True)
    (project / ".venv" / "lib" / "big.so").write_text("x")
    (project / "seminas_ray").mkdir()
    (project / "seminas_ray" / "__init__.py").write_text("")

    def rsync(src: str, dst: Path) -> set[str]:
        dst.mkdir(parents=True)
        subprocess.run(["rsync", "-a", *args, src, f"{dst}/"], check=True, capture_output=True)
        return {str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()}

    # `ray rsync-down cluster/cluster.yaml '~/seminas_ray/runs/' ./runs/` (trailing slash) gets the results.
    assert rsync(f"{project}/runs/", tmp_path / "down_slash") == {"nasbench-1/report.md"}
    # Without the trailing slash the anchored /runs/ rule drops the whole folder: why the docs insist on it.
    assert rsync(f"{project}/runs", tmp_path / "down_noslash") == set()
    # Syncing the project up skips the venv and the results.
    assert rsync(f"{project}/", tmp_path / "up") == {"seminas_ray/__init__.py"}


# ---------------------------------------------------------------- command line


def test_cli_prints_ok_for_shipped_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "seminas_ray.cluster_config", str(AWS_FILE), str(LOCAL_FILE)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("OK ") == 2
    assert "still to edit before `ray up`: available_node_types.head.node_config.ImageId" in done.stdout


def test_cli_reports_errors_and_exits_1(tmp_path: Path, aws_raw: dict, capsys: pytest.CaptureFixture) -> None:
    bad = copy.deepcopy(aws_raw)
    bad["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.25
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(bad))
    exposed = copy.deepcopy(aws_raw)
    exposed["head_start_ray_commands"] = ["ray start --head --dashboard-host=0.0.0.0"]
    exposed_file = tmp_path / "exposed.yaml"
    exposed_file.write_text(yaml.safe_dump(exposed))
    assert main([str(bad_file), str(exposed_file)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR {bad_file}: schema error at available_node_types/gpu_worker/resources/GPU" in out
    assert f"ERROR {exposed_file}: head_start_ray_commands[0]: --dashboard-host=0.0.0.0" in out
