"""The ftsweep worker under accelerate's FSDP path on CPU (gloo): for tests only.

    accelerate launch --config_file RUN_DIR/accelerate_config.yaml tests/fsdp_cpu_worker.py RUN_DIR

torch 2.13's FSDP2 (``fully_shard``) runs on CPU with gloo, but accelerate only turns its
FSDP plugin on for accelerator devices: on CPU the state stays MULTI_CPU and the plugin is
dropped. This shim sets the FSDP state where accelerate itself would on a GPU (and mirrors
it into PartialState, as accelerate does), so everything after it is the real path: the
Trainer, ``fsdp2_prepare_model``, peft, the full-state-dict gather and the worker.
"""

from __future__ import annotations

import sys
from typing import Any

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self: Any, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP


AcceleratorState.__init__ = _init_with_fsdp_on_cpu  # type: ignore[method-assign]

if __name__ == "__main__":
    from ftsweep.worker.__main__ import main

    sys.exit(main(sys.argv[1:]))
