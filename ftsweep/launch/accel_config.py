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
        "compute_environment": "LOCAL_MACHINE",
        "machine_rank": 0,
        "num_machines": 1,
        "num_processes": num_processes,
        "main_training_function": "main",
        "mixed_precision": PRECISION[t["precision"]],
        "use_cpu": False,
        "rdzv_backend": "static",
        "same_network": True,
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
        out["fsdp_config"] = fsdp2_config(dist)
    return out


def fsdp2_config(dist: dict[str, Any]) -> dict[str, Any]:
    """FSDP2 (``fully_shard``), the version accelerate and peft recommend for adapters.

    FSDP1 failed with LoRA on a tied-embedding model (issue 13): with ``use_orig_params``
    and one process (FULL_SHARD silently becomes NO_SHARD) the frozen root unit re-adopts
    the forward's plain-Tensor views of ``embed_tokens.weight`` as its original
    parameters, and the next forward dies in ``_use_unsharded_views`` with
    ``as_params=True type(prim_param)=<class 'torch.Tensor'>``. FSDP2 keeps one DTensor
    per parameter instead of flat parameters: no ``use_orig_params``, frozen and
    trainable parameters may share a unit, and accelerate puts tied embeddings in one
    group and keeps trainable parameters in fp32 under bf16/fp16 compute.
    """
    return {
        "fsdp_version": 2,
        # FULL_SHARD frees gathered parameters after forward (ZeRO-3-like); SHARD_GRAD_OP
        # keeps them until backward (ZeRO-2-like). NO_SHARD is DDP and is refused earlier.
        "fsdp_reshard_after_forward": dist["fsdp_sharding"] != "SHARD_GRAD_OP",
        "fsdp_offload_params": dist["offload"],
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",  # the model's _no_split_modules
        # The worker saves from a full state dict gathered to rank 0 (safetensors).
        "fsdp_state_dict_type": "FULL_STATE_DICT",
        # Every rank loads the weights itself: the meta-device path would also have to
        # rebuild each method's modules on ranks that hold no weights.
        "fsdp_cpu_ram_efficient_loading": False,
        "fsdp_activation_checkpointing": False,  # training.gradient_checkpointing does it
    }


def write_accelerate_config(
    path: Path, cfg: dict[str, Any], dist: dict[str, Any], num_processes: int
) -> Path:
    path.write_text(yaml.safe_dump(accelerate_config(cfg, dist, num_processes), sort_keys=True))
    return path
