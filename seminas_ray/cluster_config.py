"""Offline checks for ``ray up`` cluster files (``cluster/cluster.yaml``, ``cluster/local.yaml``).

``ray up`` validates a cluster file in ``ray.autoscaler._private.commands._bootstrap_config`` before it talks to a
cloud: ``prepare_config`` (merge the provider's ``defaults.yaml``, rewrite on-prem ``local`` files into their single
node type, merge ``setup_commands`` into the head/worker lists, fill per-node-type min/max workers) and then
``validate_config`` (the JSON schema, ``head_node_type`` among the node types, sum of ``min_workers`` <=
``max_workers``). :func:`validate_cluster_file` runs exactly those two calls, so a typo or a bad value fails here, on
a laptop with no cloud SDK and no credentials, instead of half-way through ``ray up``. The one step it leaves out is
the provider's resource autodetection between the two calls (AWS asks EC2 for the vCPU/GPU counts of each instance
type); it needs the network, only adds resources, and ``ray up`` itself only warns when it fails.

The two Ray functions are private API, which is why the project pins ``ray==2.60.0``.

On top of Ray's own checks, :func:`exposure_problems` looks for a dashboard or Ray port opened to the world (the
dashboard runs code for whoever reaches it), :func:`unknown_ray_start_flags` for misspelt ``ray start`` options, and
:func:`install_pin_problems` checks that the project install in ``setup_commands`` pins the same
torch/torchaudio/ray versions as ``pyproject.toml``.

Command line::

    python -m seminas_ray.cluster_config cluster/cluster.yaml [cluster/local.yaml ...]

prints ``OK`` per file (plus notes on values still marked ``REPLACE_ME`` and on local file_mounts sources that do not
exist yet), or the error; the exit status is 1 when any file fails.
"""
from __future__ import annotations

import argparse
import copy
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import jsonschema
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.scripts.scripts import start as ray_start  # the click command behind `ray start`

# The dashboard, the GCS and the Ray Client server: anyone who reaches one of these can run code on the cluster.
RAY_PUBLIC_PORTS = {8265: "dashboard", 6379: "GCS", 10001: "Ray Client server"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
PLACEHOLDER = "REPLACE_ME"
# Packages whose versions must agree between pyproject.toml and the cluster's install command.
PINNED_PACKAGES = ("torch", "torchaudio", "ray")

_DASHBOARD_HOST_RE = re.compile(r"--dashboard-host(?:=|\s+)(\S+)")
_START_COMMAND_KEYS = ("head_start_ray_commands", "worker_start_ray_commands")
_SETUP_COMMAND_KEYS = ("setup_commands", "head_setup_commands", "worker_setup_commands", "initialization_commands")


class ClusterConfigError(ValueError):
    """A cluster file that ``ray up`` would reject (the message names the file and the offending key or value)."""


def load_cluster_yaml(path: str | Path) -> dict[str, Any]:
    """Read a cluster file the way ``ray up`` does (``yaml.safe_load``) and check that it is a mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ClusterConfigError(f"{path}: cannot read the cluster file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClusterConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ClusterConfigError(f"{path}: a cluster file must be a YAML mapping, got {type(data).__name__}")
    return data


def validate_cluster_config(config: dict[str, Any], source: str = "<cluster config>") -> dict[str, Any]:
    """Run ``prepare_config`` + ``validate_config`` on a copy of ``config``; return the prepared config.

    The prepared config is what ``ray up`` goes on to use: the provider defaults filled in, ``setup_commands``
    merged into ``head_setup_commands``/``worker_setup_commands``, per-node-type ``min_workers``/``max_workers`` set
    (and, for the ``local`` provider, its single generated node type). ``validate_config`` must never see the raw
    file: it requires keys that only the defaults add. Raises :class:`ClusterConfigError` naming ``source``.
    """
    if not isinstance(config, dict):
        raise ClusterConfigError(f"{source}: a cluster config must be a mapping, got {type(config).__name__}")
    if not isinstance(config.get("provider"), dict) or "type" not in config["provider"]:
        raise ClusterConfigError(f"{source}: 'provider' with a 'type' (aws, gcp, azure, local, ...) is required")
    try:
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(top level)"
        raise ClusterConfigError(f"{source}: schema error at {where}: {exc.message}") from None
    except click.ClickException as exc:
        # prepare_local aborts through Ray's CLI logger (e.g. available_node_types in an on-prem file).
        raise ClusterConfigError(f"{source}: {exc.format_message()}") from None
    except NotImplementedError as exc:
        raise ClusterConfigError(f"{source}: {exc}") from None
    except (ValueError, RuntimeError, KeyError, TypeError, AssertionError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ClusterConfigError(f"{source}: {detail}") from None
    return prepared


def validate_cluster_file(path: str | Path) -> dict[str, Any]:
    """Load a cluster YAML and run exactly what ``ray up`` runs before contacting a cloud; return the prepared config.

    Raises :class:`ClusterConfigError` with the file name and the reason (unknown key, wrong type, fractional node
    resource, ``head_node_type`` not defined, ``max_workers`` below the sum of ``min_workers``, ...).
    """
    return validate_cluster_config(load_cluster_yaml(path), source=str(path))


def _port_range(rule: dict[str, Any]) -> tuple[int, int] | None:
    """The inclusive port range of an EC2 ``IpPermissions`` rule, or ``None`` for "all ports"."""
    if str(rule.get("IpProtocol", "tcp")) == "-1":
        return None
    low = rule.get("FromPort", -1)
    high = rule.get("ToPort", low)
    if low in (-1, None):
        return None
    return int(low), int(high if high not in (-1, None) else 65535)


def _world_cidrs(rule: dict[str, Any]) -> list[str]:
    """The CIDRs of a rule that admit the whole internet."""
    cidrs = [r.get("CidrIp", "") for r in rule.get("IpRanges", [])]
    cidrs += [r.get("CidrIpv6", "") for r in rule.get("Ipv6Ranges", [])]
    return [c for c in cidrs if c in ("0.0.0.0/0", "::/0")]


def _all_commands(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Every shell command of a (raw or prepared) config as ``(where, command)`` pairs."""
    found: list[tuple[str, str]] = []
    for key in _START_COMMAND_KEYS + _SETUP_COMMAND_KEYS:
        for i, cmd in enumerate(config.get(key) or []):
            found.append((f"{key}[{i}]", str(cmd)))
    for name, node_type in (config.get("available_node_types") or {}).items():
        for key in ("initialization_commands", "worker_setup_commands"):
            for i, cmd in enumerate(node_type.get(key) or []):
                found.append((f"available_node_types.{name}.{key}[{i}]", str(cmd)))
    return found


def exposure_problems(config: dict[str, Any]) -> list[str]:
    """Ways the config would expose the dashboard (or another Ray port) beyond the head node's loopback.

    Run it on the *prepared* config: when a file omits ``head_start_ray_commands`` the AWS defaults supply one with
    ``--dashboard-host=0.0.0.0``. Checks (1) every ``--dashboard-host`` in any command is a loopback address,
    (2) no ``provider.security_group.IpPermissions`` rule opens the dashboard/GCS/client ports or all traffic to
    0.0.0.0/0 or ::/0, (3) no docker ``run_options`` publish 8265. Returns human-readable problems (empty = fine).
    """
    problems: list[str] = []
    for where, cmd in _all_commands(config):
        for host in _DASHBOARD_HOST_RE.findall(cmd):
            host = host.strip("'\"")
            if host not in LOOPBACK_HOSTS:
                problems.append(f"{where}: --dashboard-host={host} serves the dashboard beyond localhost; "
                                "bind 127.0.0.1 and use `ray dashboard CLUSTER.yaml` (SSH port-forward) instead")
    rules = ((config.get("provider") or {}).get("security_group") or {}).get("IpPermissions") or []
    for i, rule in enumerate(rules):
        span = _port_range(rule)
        opened = [f"{port} ({name})" for port, name in RAY_PUBLIC_PORTS.items()
                  if span is None or span[0] <= port <= span[1]]
        if opened:
            problems.append(f"provider.security_group.IpPermissions[{i}] opens {', '.join(opened)}; "
                            "reach the dashboard through `ray dashboard` instead")
        elif span is None and _world_cidrs(rule):
            problems.append(f"provider.security_group.IpPermissions[{i}] opens all ports to {_world_cidrs(rule)}")
    docker = config.get("docker") or {}
    for key in ("run_options", "head_run_options", "worker_run_options"):
        for opt in docker.get(key) or []:
            if re.search(r"(-p|--publish)[ =]\S*8265", str(opt)):
                problems.append(f"docker.{key}: {opt!r} publishes the dashboard port")
    return problems


_AUTH_MODE_RE = re.compile(r"RAY_AUTH_MODE\s*[=:]\s*['\"]?([A-Za-z0-9_-]*)")


def _strings(value: Any, where: str = "") -> list[tuple[str, str]]:
    """Every string in the config with its dotted path (commands, docker options, env settings)."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}[{i}]")]
    return [(where, value)] if isinstance(value, str) else []


def auth_problems(config: dict[str, Any]) -> list[str]:
    """Places that turn Ray's token authentication off (``RAY_AUTH_MODE`` set to anything but ``token``).

    Why: without it anyone who reaches a Ray port can submit code to the cluster; the shipped files start every
    node with ``RAY_AUTH_MODE=token`` and ship the token.
    """
    problems = []
    for where, text in _strings(config):
        for mode in _AUTH_MODE_RE.findall(text):
            if mode != "token":
                problems.append(f"{where}: RAY_AUTH_MODE={mode or '(empty)'} turns token authentication off; "
                                "use RAY_AUTH_MODE=token and ship ~/.ray/auth_token (see docs/cluster.md)")
    return problems


def unknown_ray_start_flags(config: dict[str, Any]) -> list[str]:
    """``--flags`` given to ``ray start`` in the start commands that this Ray's ``ray start`` does not have.

    A misspelt flag only surfaces when ``ray start`` fails on the node, after minutes of setup; this catches it here.
    """
    known = {opt.split("=")[0] for param in ray_start.params for opt in param.opts if opt.startswith("--")}
    problems = []
    for key in _START_COMMAND_KEYS:
        for i, cmd in enumerate(config.get(key) or []):
            for part in re.split(r"[;&|]+", str(cmd)):  # one shell command at a time
                words = part.split()
                for j in range(len(words) - 1):
                    if words[j] != "ray" or words[j + 1] != "start":
                        continue
                    for word in words[j + 2:]:
                        flag = word.split("=")[0]
                        if flag.startswith("--") and flag not in known:
                            problems.append(f"{key}[{i}]: `ray start` has no option {flag}")
    return problems


def project_pins(pyproject: str | Path) -> dict[str, Requirement]:
    """The ``==`` pins of :data:`PINNED_PACKAGES` in ``pyproject.toml``: ``[project].dependencies`` and the optional
    extras (torchaudio is pinned in ``[tts]``)."""
    pyproject = Path(pyproject)
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
        deps = list(project["dependencies"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ClusterConfigError(f"{pyproject}: cannot read [project].dependencies ({exc})") from exc
    for extra in dict(project.get("optional-dependencies", {})).values():
        deps += [d for d in extra if canonicalize_name(Requirement(d).name) != canonicalize_name(project["name"])]
    pins = {}
    for dep in deps:
        req = Requirement(dep)
        if canonicalize_name(req.name) in PINNED_PACKAGES:
            pins[canonicalize_name(req.name)] = req
    return pins


def install_requirements(config: dict[str, Any], project_dir: str = "seminas_ray") -> dict[str, Requirement]:
    """The requirements named on the command line that installs the project.

    Looks through ``setup_commands`` (and the head/worker variants) for the install command that names the project,
    either as an editable path ending in ``project_dir`` (``pip install -e ~/seminas_ray``) or as a requirement
    (``"seminas_ray @ git+https://...@v0.1.0"``); returns its other requirement arguments keyed by canonical name.
    Raises :class:`ClusterConfigError` if there is no such command.
    """
    for where, cmd in _all_commands(config):
        if where.startswith(_START_COMMAND_KEYS):
            continue
        try:
            words = shlex.split(cmd)
        except ValueError:
            continue
        if "install" not in words:
            continue
        editable = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-e", "--editable")]
        reqs: dict[str, Requirement] = {}
        for word in words[words.index("install") + 1:]:
            if word.startswith("-") or word in editable or ("/" in word and "@" not in word) or "$" in word:
                continue
            try:
                req = Requirement(word)
            except InvalidRequirement:
                continue
            reqs[canonicalize_name(req.name)] = req
        project = canonicalize_name(project_dir)
        paths = [re.sub(r"\[[^\]]*\]$", "", path).rstrip("/") for path in editable]  # `-e dir[all]`: extras
        if project in reqs or any(path.endswith(project_dir) for path in paths):
            reqs.pop(project, None)
            return reqs
    raise ClusterConfigError(f"no setup command installs the project (`pip install -e .../{project_dir}` or "
                             f"`pip install \"{project_dir} @ git+https://...@<tag>\"`)")


def install_pin_problems(config: dict[str, Any], pyproject: str | Path) -> list[str]:
    """Where the cluster's install command and ``pyproject.toml`` disagree on torch/torchaudio/ray (pins, extras)."""
    wanted = project_pins(pyproject)
    have = install_requirements(config)
    problems = []
    for name in PINNED_PACKAGES:
        if name not in wanted:
            problems.append(f"{pyproject} does not pin {name}")
            continue
        if name not in have:
            problems.append(f"the project install command does not pin {name} (pyproject: {wanted[name]})")
            continue
        if str(have[name].specifier) != str(wanted[name].specifier) or have[name].extras != wanted[name].extras:
            problems.append(f"the project install command pins {have[name]}, pyproject.toml pins {wanted[name]}")
    return problems


def placeholders(config: Any, prefix: str = "") -> list[str]:
    """Dotted paths of values that still contain ``REPLACE_ME`` (things a user must edit before ``ray up``)."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            found += placeholders(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found += placeholders(value, f"{prefix}[{i}]")
    elif isinstance(config, str) and PLACEHOLDER in config:
        found.append(prefix)
    return found


def missing_mount_sources(config: dict[str, Any], base: str | Path = ".") -> list[str]:
    """``file_mounts`` whose local source does not exist (``ray up`` would stop on them); relative to ``base``."""
    missing = []
    for remote, local in (config.get("file_mounts") or {}).items():
        path = Path(str(local)).expanduser()
        if not path.is_absolute():
            path = Path(base) / path
        if not path.exists():
            missing.append(f"{remote}: {local}")
    return missing


def main(argv: list[str] | None = None) -> int:
    """CLI: validate each file like ``ray up`` plus the exposure and start-flag lints; print OK or the error."""
    parser = argparse.ArgumentParser(
        prog="python -m seminas_ray.cluster_config",
        description="Validate ray up cluster files offline (the checks ray up runs before contacting a cloud).",
    )
    parser.add_argument("files", nargs="+", help="cluster YAML files, e.g. cluster/cluster.yaml")
    args = parser.parse_args(argv)
    failed = False
    for name in args.files:
        try:
            raw = load_cluster_yaml(name)
            prepared = validate_cluster_config(raw, source=name)
        except ClusterConfigError as exc:
            print(f"ERROR {exc}")
            failed = True
            continue
        exposed = exposure_problems(prepared) + auth_problems(prepared) + unknown_ray_start_flags(prepared)
        if exposed:
            failed = True
            for problem in exposed:
                print(f"ERROR {name}: {problem}")
            continue
        types = prepared["available_node_types"]
        summary = ", ".join(f"{t} [{types[t]['min_workers']}..{types[t]['max_workers']}]" for t in types)
        print(f"OK {name}: provider {prepared['provider']['type']}, head {prepared['head_node_type']}, "
              f"node types {summary}, max_workers {prepared['max_workers']}")
        for path in placeholders(raw):
            print(f"  note: still to edit before `ray up`: {path}")
        for mount in missing_mount_sources(raw):
            print(f"  note: file_mounts source missing here (ray up runs from the repo root): {mount}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
