"""What a user sees in the Ray dashboard: named tasks, the state API over HTTP, and custom search metrics."""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


@pytest.fixture()
def ray_with_dashboard():
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    if ray.is_initialized():
        ray.shutdown()
    port = free_port()
    # 8 logical CPUs: the controller's reserved group gets 2, so pseudo-labelling runs as parallel Ray tasks (with
    # one reserved CPU the round labels its pool in-process)
    ctx = ray.init(num_cpus=8, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
                   configure_logging=False, log_to_driver=False)
    yield ray, ctx
    ray.shutdown()


def test_search_is_visible_in_the_dashboard(ray_with_dashboard, data_dir, tmp_path):
    ray, ctx = ray_with_dashboard
    from ray.util.state import list_tasks

    from seminas_ray.distributed.runner import RunSettings
    from seminas_ray.distributed.runner import run_search
    from seminas_ray.tasks import get_task

    settings = RunSettings(
        task="nasbench", preset="paper-300", seed=0, concurrency=2, trial_cpus=0.5, out=tmp_path / "run",
        dashboard=True, options={"benchmark": "nb201", "data": None, "dataset": "cifar10", "method": "seminas"},
        overrides=("n_seed=20", "n_unlabelled=300", "n_per_round=10", "n_rounds=1", "pretrain_epochs=30",
                   "train_epochs=10"))
    report = run_search(get_task("nasbench").prepare(settings), settings)
    assert report["n_queries"] == 30
    assert json.loads((settings.out / "report.json").read_text())["n_queries"] == 30

    # name this cluster explicitly: other Ray instances may run on the same machine
    names = {t.name for t in list_tasks(address=f"http://{ctx.dashboard_url}", limit=10_000)}
    assert {"pseudo_label", "controller_round"} <= names, names

    # the same through the dashboard's HTTP API (what the UI itself reads)
    url = f"http://{ctx.dashboard_url}"
    assert json.loads(get(f"{url}/api/version"))["ray_version"] == ray.__version__
    tasks = json.loads(get(f"{url}/api/v0/tasks?limit=10000&filter_keys=name&filter_predicates=%3D"
                           f"&filter_values=pseudo_label"))
    assert tasks["data"]["result"]["total"] >= 1

    # custom metrics reach the node's Prometheus endpoint (what the Metrics view plots)
    node = ray._private.worker.global_worker.node
    deadline = time.time() + 60
    text = ""
    while time.time() < deadline:
        text = get(f"http://127.0.0.1:{node.metrics_export_port}/metrics").decode()
        if "seminas_queries" in text:
            break
        time.sleep(2)
    assert "seminas_queries" in text and "seminas_best_score" in text


@pytest.mark.slow
def test_supernet_actors_are_visible_in_the_dashboard(ray_with_dashboard, tmp_path):
    """The ImageNet task's smoke search (no final stage): the named supernet replicas and the coordinator the docs
    promise, as the dashboard's Actors view lists them (its HTTP state API), with the search's tasks."""
    ray, ctx = ray_with_dashboard
    from seminas_ray.cli import parse_settings
    from seminas_ray.distributed.runner import run_search
    from seminas_ray.tasks import get_task

    settings = parse_settings(["--task", "imagenet", "--preset", "smoke", "--no-final", "--dashboard",
                               "--out", str(tmp_path / "run")])
    report = run_search(get_task("imagenet").prepare(settings), settings)
    assert report["search"]["n_evaluated"] == 10

    url = f"http://{ctx.dashboard_url}"
    actors = json.loads(get(f"{url}/api/v0/actors?limit=10000&detail=true"))["data"]["result"]["result"]
    by_name = {a.get("name"): a for a in actors if a.get("name")}
    assert {"supernet-0", "supernet-1", "imagenet-supernet-coordinator"} <= set(by_name), sorted(by_name)
    assert by_name["supernet-0"]["class_name"] == "SupernetActor"
    names = {t["name"] for t in json.loads(get(f"{url}/api/v0/tasks?limit=10000"))["data"]["result"]["result"]}
    assert "controller_round" in names, names
