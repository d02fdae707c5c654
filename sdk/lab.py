"""A shared device lab on Ray: every device is a Ray custom resource, a measurement leases it.

Each device is the resource ``device:<target>`` with capacity 1 (``<target>`` is its line in
the hosts file: an alias or ``user@host:port``).  A lease is a placement group holding that one
unit: Ray grants it to one holder at a time, whoever asked (any driver, any job, any machine on
the cluster), and frees it when the holder releases it, raises (a device that drops mid-lease),
is interrupted, or dies (a placement group lives as long as the job that made it).  A lease
starts no process, so it costs one round trip to the cluster's control store (see
``benchmarks/scale_out.py`` for the measured overhead).

How the devices get onto the cluster -- two parts, and why:

- **Capacity: node resources declared at ``ray start``.**  Ray cannot add a custom resource to
  a running node, and the node that declares a device is where its leases are granted.  The
  natural owner is a *lab node*: the machine on the lab's network that reaches the boards joins
  the cluster with ``ray start --address HEAD --num-cpus 0 --resources '{"device:pi5-3": 1}'``
  (``edgeship lab register`` prints that command for any device the cluster does not have
  yet; ``ray.init(resources=...)`` does the same for a one-machine cluster).
- **Registry: one long-lived, detached actor** (``edgeship-lab`` in namespace
  ``edgeship``), holding what Ray resources cannot say: the target each device is reached at,
  its cooldown, who holds each lease (user, host, pid, what for) and the last release time.
  The cooldown is served inside the lease: a new holder waits out ``cooldown_s`` after the
  previous release *while holding the device*, so no one else can slip in between.

``lease`` is used by ``compress --target T --lab ADDRESS`` around each measurement and by a
fleet bench (``edgeship bench --hosts-file H --lab ADDRESS``) around each host's benchmark.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from edgeship.core.errors import ConfigError

NAMESPACE = "edgeship"
REGISTRY = "edgeship-lab"
DEFAULT_COOLDOWN_S = 0.0
HISTORY = 2000  # leases the registry remembers (status --history)


def resource(device: str) -> str:
    return f"device:{device}"


class _Registry:
    """The lab's registry actor: devices, holders, last releases (one method at a time)."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.holders: dict[str, dict[str, Any]] = {}
        self.released: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []

    def register(self, devices: list[str], cooldown_s: float) -> list[str]:
        for d in devices:
            self.devices[d] = {"target": d, "cooldown_s": cooldown_s}
        return sorted(self.devices)

    def known(self, device: str) -> Optional[dict[str, Any]]:
        return self.devices.get(device)

    def acquire(self, device: str, lease_id: str, holder: dict[str, Any]) -> float:
        """Record the holder; returns the seconds of cooldown it waits (holding the device)
        before its work starts, at ``since``."""
        now = time.time()
        cooldown = self.devices.get(device, {}).get("cooldown_s", 0.0)
        wait = max(0.0, self.released.get(device, 0.0) + cooldown - now)
        self.holders[lease_id] = {"device": device, "since": now + wait, "granted": now, **holder}
        return wait

    def release(self, lease_id: str, outcome: str) -> None:
        held = self.holders.pop(lease_id, None)
        if held is None:
            return
        now = time.time()
        self.released[held["device"]] = now
        self.history.append(held | {"until": now, "outcome": outcome, "lease": lease_id})
        del self.history[:-HISTORY]

    def snapshot(self) -> dict[str, Any]:
        return {"devices": self.devices, "holders": self.holders, "released": self.released,
                "history": self.history}


def _ray(address: Optional[str]) -> Any:
    from edgeship.raycluster import connect

    return connect(address or "auto")


def _registry(ray: Any, create: bool = False) -> Any:
    if create:
        actor = ray.remote(num_cpus=0, max_restarts=-1)(_Registry)
        return actor.options(name=REGISTRY, namespace=NAMESPACE, lifetime="detached",
                             get_if_exists=True).remote()
    try:
        return ray.get_actor(REGISTRY, namespace=NAMESPACE)
    except ValueError:
        raise ConfigError("this Ray cluster has no edgeship lab",
                          "run 'edgeship lab register HOSTS_FILE --address ADDRESS' first") from None


def register(hosts_file: Path, address: Optional[str] = None,
             cooldown_s: float = DEFAULT_COOLDOWN_S) -> list[str]:
    """Register the devices of a hosts file (one target per line); each must already be a
    resource of the cluster (see the module docstring); returns every registered device."""
    import json

    from edgeship.targets.sshconfig import read_hosts_file

    if cooldown_s < 0:
        raise ConfigError(f"--cooldown must be ≥ 0 s, got {cooldown_s}", "pass e.g. --cooldown 2")
    devices = list(dict.fromkeys(read_hosts_file(hosts_file)))
    ray = _ray(address)
    have = ray.cluster_resources()
    missing = [d for d in devices if have.get(resource(d), 0) < 1]
    if missing:
        declare = json.dumps({resource(d): 1 for d in missing})
        raise ConfigError(f"the cluster has no resource for {len(missing)} device(s) "
                          f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''})",
                          f"on the machine that reaches them run: ray start --address "
                          f"{address or 'HEAD'} --num-cpus 0 --resources '{declare}'")
    return list(ray.get(_registry(ray, create=True).register.remote(devices, cooldown_s)))


def status(address: Optional[str] = None) -> dict[str, Any]:
    """Devices, who holds each now, and who waits (from Ray's placement-group table)."""
    ray = _ray(address)
    snap = ray.get(_registry(ray).snapshot.remote())
    table = ray.util.placement_group_table()
    waiting: dict[str, int] = {}
    for pg in table.values():
        name = pg.get("name") or ""
        if name.startswith("edgeship-lease:") and pg.get("state") == "PENDING":
            device = name.split(":", 1)[1].rsplit("#", 1)[0]
            waiting[device] = waiting.get(device, 0) + 1
    held = {h["device"]: h for h in snap["holders"].values()}
    have = ray.cluster_resources()
    devices = []
    for d, info in sorted(snap["devices"].items()):
        h = held.get(d)
        keep = ("user", "host", "pid", "what", "since")
        devices.append({"device": d, "resource": resource(d),
                        "in_cluster": have.get(resource(d), 0) >= 1,
                        "cooldown_s": info["cooldown_s"],
                        "holder": None if h is None else {k: h[k] for k in keep},
                        "waiting": waiting.get(d, 0), "last_release": snap["released"].get(d)})
    return {"schema": "edgeship.lab/1", "devices": devices, "leases": len(snap["history"])}


def history(address: Optional[str] = None) -> list[dict[str, Any]]:
    ray = _ray(address)
    return list(ray.get(_registry(ray).snapshot.remote())["history"])


@contextlib.contextmanager
def lease(address: Optional[str], device: str, what: str = "measurement",
          timeout: Optional[float] = None, stop: Optional[threading.Event] = None
          ) -> Iterator[dict[str, Any]]:
    """Hold ``device`` for the body: waits for it (and its cooldown), frees it on every way out.
    ``stop`` set while waiting ends the wait with KeyboardInterrupt (a fleet's Ctrl-C reaches
    its worker threads that way)."""
    ray = _ray(address)
    registry = _registry(ray)
    if ray.get(registry.known.remote(device)) is None:
        raise ConfigError(f"target '{device}' is not a device of the lab",
                          "register it: edgeship lab register HOSTS_FILE --address ADDRESS")
    from ray.util.placement_group import placement_group, remove_placement_group

    lease_id = uuid.uuid4().hex[:12]
    asked = time.perf_counter()
    pg = placement_group([{resource(device): 1}], name=f"edgeship-lease:{device}#{lease_id}")
    outcome = "interrupted"
    acquired = False
    try:
        while not pg.wait(timeout_seconds=0.5):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            if timeout is not None and time.perf_counter() - asked > timeout:
                from edgeship.core.errors import TargetError

                raise TargetError(f"device '{device}' stayed leased for {timeout:g} s",
                                  "see 'edgeship lab status' for its holder")
        holder = {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
                  "what": what}
        wait = ray.get(registry.acquire.remote(device, lease_id, holder))
        acquired = True
        if wait > 0:
            time.sleep(wait)
        info = {"device": device, "lease": lease_id, "waited_s": time.perf_counter() - asked,
                "cooldown_waited_s": wait}
        yield info
        outcome = "ok"
    except Exception as exc:
        outcome = f"{type(exc).__name__}"
        raise
    finally:
        if acquired:
            with contextlib.suppress(Exception):
                ray.get(registry.release.remote(lease_id, outcome))
        remove_placement_group(pg)


def device_for(target: Any) -> str:
    """The lab device a target string names (the hosts-file line itself)."""
    return str(target).strip()


def registered(address: Optional[str], devices: Sequence[str]) -> list[str]:
    """Those of ``devices`` the lab does not know (empty when all are registered)."""
    ray = _ray(address)
    registry = _registry(ray)
    return [d for d in devices if ray.get(registry.known.remote(d)) is None]
