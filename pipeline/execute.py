"""The one module that imports Ray: runs the shard stages as a Ray Data pipeline.

Each row of the Ray dataset is one shard; the stages are the same plain transforms the local executor loops
over (:mod:`pipeline.stages`), applied with ``Dataset.map``. Heavy stages (SAM proposals, LLM negatives) run as
actor pools with declared resources. Local runs are kept on loopback (see :func:`loopback_env`); with
``RAY_ADDRESS`` set, the same command runs on that cluster.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Config
from pipeline.writer import WORKER_ENV

log = logging.getLogger(__name__)

BOOTSTRAP = "provider:\n  type: local\n"


def loopback_env(home: Path) -> dict[str, str]:
    """Environment that keeps a local Ray on 127.0.0.1 and stops its cloud-metadata probe.

    Ray reads ``~/ray_bootstrap_config.yaml`` first; with ``provider: type: local`` it skips the probe of
    169.254.169.254 / metadata.google.internal. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes a local Ray use
    127.0.0.1 instead of the address of the machine's network interface. (PLATFORM.md, measured with strace.)
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text(BOOTSTRAP)
    return {"HOME": str(home), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


def init_ray(cfg: Config) -> None:
    address = os.environ.get("RAY_ADDRESS")
    env = loopback_env(cfg.cache_path() / "ray_home")
    # before `import ray`: Ray reads some of these at import time; inherited by the raylet, GCS and workers
    os.environ.update(env)
    import ray

    if ray.is_initialized():
        return
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in env.items() if k != "HOME"}})
    else:
        ray.init(num_cpus=cfg.run.num_cpus, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = bool(cfg.run.progress)
    ctx.execution_options.preserve_order = True


def _note_worker() -> None:
    """Node bookkeeping: the Write stage records ``ray:<node id>`` as each shard marker's ``worker``."""
    if WORKER_ENV not in os.environ:
        import ray

        os.environ[WORKER_ENV] = f"ray:{ray.get_runtime_context().get_node_id()}"


def _wrap(fn: Callable) -> Callable:
    """Adapt a plain stage (object -> object) to a Ray Data row function over pickled payloads."""

    def apply(row: dict) -> dict:
        _note_worker()
        return {"payload": pickle.dumps(fn(pickle.loads(row["payload"])), protocol=5)}

    return apply


class _ActorStage:
    """Actor-pool wrapper: the stage (a lazily-building RecordStage) lives as long as the actor, so its model
    is loaded once per actor and reused for every shard payload."""

    def __init__(self, stage: Callable):
        self.stage = stage

    def __call__(self, row: dict) -> dict:
        _note_worker()
        return {"payload": pickle.dumps(self.stage(pickle.loads(row["payload"])), protocol=5)}


def run_ray(cfg: Config, specs: list, stages: list[tuple[str, Callable, dict | None]]) -> list:
    """Run `stages` over every shard spec; returns the last stage's outputs in shard order.

    `stages` is a list of (name, callable-or-factory, actor_options). With actor_options None the callable is a
    plain function applied as Ray tasks; otherwise it is a zero-argument factory run once per actor, and
    actor_options carries {"size": n, "num_gpus": g, "num_cpus": c}.
    """
    init_ray(cfg)  # first: it sets the loopback environment before Ray is imported
    import ray

    items = [{"payload": pickle.dumps(s, protocol=5)} for s in specs]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    for name, fn, actor in stages:
        if actor is None:
            ds = ds.map(_wrap(fn))
        else:
            ds = ds.map(_ActorStage, fn_constructor_args=(fn,),
                        compute=ray.data.ActorPoolStrategy(size=int(actor.get("size", 1))),
                        num_gpus=actor.get("num_gpus", 0) or None, num_cpus=actor.get("num_cpus", 1))
        log.debug("stage %s added", name)
    return [pickle.loads(r["payload"]) for r in ds.take_all()]


def node_ids() -> list[str]:
    import ray

    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
