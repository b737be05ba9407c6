"""The embedding part of the model against published measurements of a real system.

NVIDIA's recsys-examples (github.com/NVIDIA/recsys-examples,
corelib/dynamicemb/benchmark/benchmark_results.json, the "trc_*" figures: TorchRec's TBE; read
here from the copy in github.com/jiashuy/recsys-examples at commit 165ffa53) times
TorchRec/FBGEMM's table-batched embedding on one H100 80GB HBM3: fp32, dim 128 (512-byte
rows), 10 tables, 1,048,570 lookups an iteration without pooling, power-law alpha 1.05, all
tables in HBM with 350,280 distinct rows an iteration: forward 0.345 ms; backward with SGD
0.614 ms, with Adam 1.005 ms. The model prices the same work with the h100-sxm5 preset, term
by term (no constant is fitted to these numbers):

    forward   read the 1,048,570 rows (gather efficiency at 512 B) + write as many outputs
    backward  the ids' sort and runs (segment_ns_per_key) + read every lookup's gradient row +
              the fused optimizer's read-modify-write of the 350,280 distinct rows, with their
              state (Adam: two more rows' worth, m and v)

The model is 17% slow on the forward: its gather reads every lookup from HBM, while the hot
rows of a Zipf batch are served from the 50 MB L2. It is 13% and 19% fast on the backward,
whose FBGEMM implementation runs more kernels (linearize, sort, run-length encode, cumsum,
the per-run reduction and update) than the model's one op and its fixed launches charge.
Each test keeps the model's error within 3 points of the error documented here (and in the
README): a change to a term shows as a failure, not as drift.
"""

import pytest

from simulator import load_hardware
from simulator.pipeline import ops

LOOKUPS = 1_048_570
DISTINCT = 350_280
ROW = 128 * 4
PUBLISHED_MS = {"forward": 0.345, "backward sgd": 0.614, "backward adam": 1.005}
DOCUMENTED_ERROR = {"forward": +17, "backward sgd": -13, "backward adam": -19}  # percent


def predicted_ms():
    prices = ops.Costs(load_hardware("h100-sxm5"))
    forward = ops.Op("forward", "gather", rows=LOOKUPS, row_bytes=ROW, nbytes=LOOKUPS * ROW)
    sgd = ops.Op("backward", "segment", rows=LOOKUPS, row_bytes=ROW, distinct=DISTINCT)
    # Adam updates the row and its two moments in place, in the fused backward: two more
    # rows' worth read and written per distinct row, with no dense source to read.
    adam_update = ops.Op("adam", "scatter", rows=DISTINCT, row_bytes=2 * ROW)
    return {"forward": float(prices.device(forward)) * 1e3,
            "backward sgd": float(prices.device(sgd)) * 1e3,
            "backward adam": float(prices.device(sgd) + prices.device(adam_update)
                                   - prices.hw.gpu_launch_us * 1e-6) * 1e3}


def error_percent(predicted, published):
    return (predicted / published - 1) * 100


@pytest.mark.parametrize("what", list(PUBLISHED_MS))
def test_the_embedding_on_h100_keeps_its_documented_error_against_recsys_examples(what):
    error = error_percent(predicted_ms()[what], PUBLISHED_MS[what])
    assert DOCUMENTED_ERROR[what] - 3 <= error <= DOCUMENTED_ERROR[what] + 3


def test_the_terms_rank_as_measured():
    # The backward costs more than the forward, and Adam's state costs more again.
    p = predicted_ms()
    assert p["forward"] < p["backward sgd"] < p["backward adam"]


# -- the same file's host-memory rows -------------------------------------------------------------
# 10 tables of 26,843,545 rows (dim 128, fp32: 137 GB, more than the H100's HBM), the same
# 1,048,570 lookups an iteration, 433,722 distinct. TorchRec's TBE runs them as:
#   "no_caching" and "no_hbm": EmbeddingLocation.MANAGED (the benchmark script,
#     benchmark_batched_dynamicemb_tables.py, builds its TorchRec baseline MANAGED without
#     --caching), the tables in UVM host memory; their trc figures are the same in both rows:
#     forward 7.931 ms, backward SGD 5.629 ms, Adam 16.139 ms.
#   "caching", cfr 1.0 and 0.8: MANAGED_CACHING, an LRU cache in HBM sized to the rows the
#     whole run touches x cfr (the benchmark's README, "Cache footprint sizing"), warm from the
#     warm-up: forward 3.358 (SGD) / 3.364 (Adam) ms at cfr 1.0, 3.986 / 3.993 at 0.8; backward
#     SGD 0.7875 / 0.7886, Adam 11.006 / 11.008.
# The model's terms: a UVM row is read (and, updated, written) over the host link at the
# preset's pinned bandwidth, the link full duplex; a cached row at HBM speed.
UVM_DISTINCT = 433_722
UVM_MS = {"forward": 7.931, "backward sgd": 5.629, "backward adam": 16.139}
UVM_ERROR = {"forward": +26, "backward sgd": -18, "backward adam": -20}  # percent
CACHED_MS = {"forward": 3.358, "backward sgd": 0.7875, "backward adam": 11.006}
CACHED_ERROR = {"forward": -88, "backward sgd": -27, "backward adam": -19}  # percent


def link_ms(hw, nbytes, both_ways):
    """Bytes read over the link (and written back, at the same time, when both_ways)."""
    read = float(hw.transfer_time(nbytes, "h2d"))
    return max(read, float(hw.transfer_time(nbytes, "d2h"))) * 1e3 if both_ways else read * 1e3


def uvm_predicted_ms():
    """forward: every lookup's row read from host memory over the link (TBE reads UVM rows
    where it needs them, one read per lookup), its output written to HBM. backward: the ids'
    sort and every lookup's gradient in HBM (the segment op with nothing to write), then the
    distinct rows read and written over the link (Adam: the row and its two moments)."""
    hw = load_hardware("h100-sxm5")
    prices = ops.Costs(hw)
    out = float(prices.device(ops.stream("output", LOOKUPS * ROW))) * 1e3
    sort = float(prices.device(ops.Op("bwd", "segment", rows=LOOKUPS, row_bytes=ROW))) * 1e3
    return {"forward": link_ms(hw, LOOKUPS * ROW, False) + out,
            "backward sgd": sort + link_ms(hw, UVM_DISTINCT * ROW, True),
            "backward adam": sort + link_ms(hw, UVM_DISTINCT * 3 * ROW, True)}


@pytest.mark.parametrize("what", list(UVM_MS))
def test_uvm_tables_keep_their_documented_error(what):
    """The link explains the UVM rows: the forward is 26% slow for the reason the HBM
    forward is 17% slow, a Zipf batch's repeated hot rows served from the GPU's L2 (here the
    link is spared them too); the backward 18-20% fast, as the HBM backward, by the kernels
    FBGEMM runs beyond the model's one op."""
    error = error_percent(uvm_predicted_ms()[what], UVM_MS[what])
    assert UVM_ERROR[what] - 3 <= error <= UVM_ERROR[what] + 3


def cached_predicted_ms():
    """cfr 1.0: the cache holds every row the run touches and is warm, so every lookup hits
    (the JSON gives no hit rate; this is the one row where none is needed) and the model's
    terms are the all-HBM ones at 433,722 distinct rows. FBGEMM keeps Adam's moments of a
    MANAGED_CACHING table in UVM, not in the cache (their traffic is why Adam's backward takes
    11 ms against SGD's 0.79): Adam adds the moments read and written over the link."""
    hw = load_hardware("h100-sxm5")
    prices = ops.Costs(hw)
    forward = ops.Op("forward", "gather", rows=LOOKUPS, row_bytes=ROW, nbytes=LOOKUPS * ROW)
    sgd = float(prices.device(ops.Op("bwd", "segment", rows=LOOKUPS, row_bytes=ROW,
                                     distinct=UVM_DISTINCT))) * 1e3
    return {"forward": float(prices.device(forward)) * 1e3, "backward sgd": sgd,
            "backward adam": sgd + link_ms(hw, UVM_DISTINCT * 2 * ROW, True)}


@pytest.mark.parametrize("what", list(CACHED_MS))
def test_a_cache_holding_every_row_keeps_its_documented_error(what):
    """The backward's terms explain it (SGD 27% fast: the cache's bookkeeping of the updated
    rows adds to the kernels the model lacks; Adam 19% fast, its moments' link traffic the
    term that matters). The forward is 88% fast: the model has no term for the cache's own
    work in TBE's forward (linearizing the ids, their unique, the LRU lookup and the
    prefetch's bookkeeping), about 3 ms here, ten times the rows' gather. Reported, not
    fitted: a term the cache modes' train stage lacks for a TorchRec-style cache."""
    error = error_percent(cached_predicted_ms()[what], CACHED_MS[what])
    assert CACHED_ERROR[what] - 3 <= error <= CACHED_ERROR[what] + 3


def test_a_cache_of_four_fifths_of_the_rows_fetches_only_the_weights():
    """cfr 0.8 against cfr 1.0: the JSON gives no hit rate, so the misses cannot be priced;
    what can be checked is the model's claim that a miss moves the row over the link. The
    extra forward time is then the misses' fetch: 0.628 ms (SGD) and 0.629 ms (Adam), i.e.
    about 67,000 rows of 512 bytes at 55 GB/s, 16% of the 433,722 distinct rows: a hit rate
    of 84%, between 0 and 1 as it must be. That Adam's extra equals SGD's within 1% says the
    fetched rows carry no optimizer state (FBGEMM caches the weights only), where the model,
    whose caches move a row with its state, would charge Adam three times SGD's traffic."""
    hw = load_hardware("h100-sxm5")
    extra_ms = {"sgd": 3.986 - 3.358, "adam": 3.993 - 3.364}
    assert extra_ms["adam"] == pytest.approx(extra_ms["sgd"], rel=0.01)
    misses = extra_ms["sgd"] * 1e-3 * hw.link_h2d_gb_per_s * 1e9 / ROW
    hit_rate = 1 - misses / UVM_DISTINCT
    assert 0.80 < hit_rate < 0.88


# -- a whole training step: NVIDIA's DLRM on one V100 -----------------------------------------
# NVIDIA/DeepLearningExamples, PyTorch/Recommendation/DLRM/README.md (the April 2020 release,
# commit 23a6382c), "Training performance: NVIDIA DGX-1 (8x V100 32G)": 1 GPU, batch 32k,
# 494k samples/s in FP32 and 875k in mixed precision (apex AMP, static loss scaling, tables in
# FP32). Its defaults (the README's command-line options): Criteo Terabyte, embedding dim 128,
# bottom MLP 512-256-128, top MLP 1024-1024-512-256-1, dot interaction, SGD: the dlrm-terabyte
# preset's architecture, at batch 32768. The README gives no table sizes (its frequency
# threshold decides them), so the capacity check is off: on gpu-only the time does not depend
# on them. The trace is a Zipf(1.05) stand-in for Criteo's ids; the preset v100-pcie3 is the
# PCIe part (14 TFLOPS FP32, 112 FP16), the DGX-1's is the SXM2 (15.7, 125).
V100_PUBLISHED = {"fp32": 494e3, "fp16": 875e3}
V100_ERROR = {"fp32": +12, "fp16": +70}  # percent


@pytest.fixture(scope="module")
def terabyte_trace(tmp_path_factory):
    from simulator import generate, load_model
    rows = list(load_model("dlrm-terabyte").table_rows)
    return generate("zipf", tmp_path_factory.mktemp("tb") / "t", table_rows=rows,
                    batch_size=32768, num_batches=6, seed=0, alpha=1.05)


@pytest.mark.parametrize("precision", list(V100_PUBLISHED))
def test_nvidia_dlrm_on_one_v100_keeps_its_documented_error(terabyte_trace, precision):
    """FP32 is 12% fast. Mixed precision is 70% fast (102% before the rule listed what
    autocast adds): the model prices autocast's half GEMMs and elementwise ops, its casts
    (the fp32 weights to half every step, the pooled fp32 rows' features to half for the
    interaction's bmm, every cast's gradient back) and GradScaler's loss scaling (the
    loss's scale, the gradients' unscale and inf check, the scale's update). Still missing:
    the V100 fp16 GEMM grid is an estimate (from an sm_90 table; no per-shape measurement of
    a V100 found), and apex AMP's own work in NVIDIA's 2020 program (its fp16 copies of the
    weights and fp32 master gradients) is priced as autocast's. Reported, not fitted."""
    from simulator import load_model
    from simulator.pipeline import simulate
    model = load_model("dlrm-terabyte", {"batch_size": 32768, "mlp_precision": precision})
    r = simulate(terabyte_trace, mode="gpu-only", hardware="v100-pcie3", model=model,
                 ignore_capacity=True)
    error = error_percent(r.throughput, V100_PUBLISHED[precision])
    assert V100_ERROR[precision] - 3 <= error <= V100_ERROR[precision] + 3
