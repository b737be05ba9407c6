"""cache-prefetch: TorchRec's prefetch pipeline. The misses of batch i+1 are fetched while
batch i trains, and the lines of batch i are locked meanwhile: the scratchpad's planning
with a window of one batch and LRU victims (as pipeline/cache_prefetch.py replays it)."""

from dataclasses import replace

from .scratchpipe import ScratchPipe


class CachePrefetch(ScratchPipe):
    name = "cache-prefetch"

    def __init__(self, config, *args, **kwargs):
        options = {"lookahead": 1, "victim": "lru", "planner": config.options["planner"]}
        super().__init__(replace(config, options=options), *args, **kwargs)

    def describe(self):
        return {k: v for k, v in super().describe().items() if k not in ("lookahead", "victim")}
