"""Cycle benchmark of the top level (driven by ``python -m sim.bench``).

Reads the heads to run from the .npz named by HDP_BENCH_IN, runs each one on the core
(no idle, no back-pressure: the core's own speed), checks it against the golden model
(and, for a job with ``"importances"``, the importance unit's reports) and writes every
head's counters to the JSON file HDP_BENCH_OUT.
"""
import dataclasses
import json
import os
import time

import cocotb
import numpy as np

from hdp_host import HDPHost
from hdp_rtl.config import HDPConfig, Registers
from streams import env_json, past_time_zero, start_clock_and_reset

CONFIG = HDPConfig.from_dict(env_json("HDP_CONFIG", {}))


@cocotb.test()
async def bench(dut):
    await past_time_zero()
    host = HDPHost(dut, CONFIG)
    await start_clock_and_reset(dut)
    await host.driver.read_config_hash()
    jobs = np.load(os.environ["HDP_BENCH_IN"], allow_pickle=False)
    meta = json.loads(str(jobs["meta"]))
    results = []
    for i, job in enumerate(meta):
        q, k, v = (jobs[f"{i}_{t}"] for t in "qkv")
        regs = Registers(**job["regs"])
        start = time.perf_counter()
        mask = job.get("channel_mask")
        counters = await host.check_head(q, k, v, regs, label=job["label"],
                                         importances=job.get("importances", False),
                                         channel_mask=None if mask is None else np.array(mask))
        results.append({**job, "counters": dataclasses.asdict(counters),
                        "wall_s": time.perf_counter() - start})
        with open(os.environ["HDP_BENCH_OUT"], "w") as f:   # partial results survive a crash
            json.dump(results, f, indent=1)
