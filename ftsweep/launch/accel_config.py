"""The accelerate config file for a run that shards itself (FSDP or DeepSpeed).

DDP needs no file: `--multi_gpu` (gloo on CPU) is enough. For FSDP and DeepSpeed the
launcher writes this file into the run directory and passes it as `--config_file`, so
the exact distributed settings of every run are kept with its results. Mixed precision
and gradient accumulation are taken from the run's training block, so the Trainer and
accelerate cannot disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def accelerate_config(cfg: dict[str, Any], dist: dict[str, Any], num_processes: int) -> dict:
    t = cfg["training"]
    out: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "machine_rank": 0, "num_machines": 1,
        "num_processes": num_processes, "main_training_function": "main",
        "mixed_precision": PRECISION[t["precision"]], "use_cpu": False,
        "rdzv_backend": "static", "same_network": True,
    }
    if dist["strategy"] == "deepspeed":
        stage = dist["zero_stage"]
        offload = "cpu" if dist["offload"] else "none"
        out["distributed_type"] = "DEEPSPEED"
        out["deepspeed_config"] = {
            "zero_stage": stage,
            "offload_optimizer_device": offload,
            # ZeRO-2 keeps parameters on the GPU; only ZeRO-3 can offload them.
            "offload_param_device": offload if stage == 3 else "none",
            "gradient_accumulation_steps": t["grad_accum"],
            "gradient_clipping": t["max_grad_norm"],  # 0.0 = no clipping, as in DDP runs
            "zero3_init_flag": False,
            "zero3_save_16bit_model": stage == 3,
        }
    else:
        out["distributed_type"] = "FSDP"
        out["fsdp_config"] = {
            "fsdp_version": 1,
            "fsdp_sharding_strategy": dist["fsdp_sharding"],
            "fsdp_offload_params": dist["offload"],
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_use_orig_params": True,  # peft methods freeze part of each wrapped unit
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,
        }
    return out


def write_accelerate_config(path: Path, cfg: dict[str, Any], dist: dict[str, Any],
                            num_processes: int) -> Path:
    path.write_text(yaml.safe_dump(accelerate_config(cfg, dist, num_processes), sort_keys=True))
    return path
