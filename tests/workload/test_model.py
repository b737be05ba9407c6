import pytest

from simulator import OptionError, generate, table_rows_from
from simulator.workload import ModelConfig, describe_model_presets, list_models, load_model
from simulator.workload.model import state_values

KAGGLE_ROWS = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
               27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572]


def tiny(**changes) -> ModelConfig:
    data = dict(name="tiny", embedding_dim=2, bottom_mlp=[4, 8, 2], top_mlp=[3, 1],
                interaction="dot", batch_size=10, dtype="fp32", optimizer="sgd")
    data.update(changes)
    return ModelConfig.from_dict({k: v for k, v in data.items() if v is not None}, "tiny.toml")


def test_row_and_state_bytes():
    assert tiny().row_bytes() == 8
    assert tiny(dtype="fp16").row_bytes() == 4
    assert tiny(optimizer="sgd").optimizer_state_bytes() == 0
    assert tiny(optimizer="adagrad").optimizer_state_bytes() == 8  # one fp32 per element
    assert tiny(optimizer="rowwise-adagrad").optimizer_state_bytes() == 4  # one fp32 per row
    assert tiny(optimizer="adagrad", dtype="bf16").row_bytes_with_state() == 4 + 8
    # Adam: two fp32 moments per element, 2 x 2 x 4 = 16 bytes beside the 8 of a dim-2 row;
    # kept in fp32 with bf16 rows too (2 x 2 bytes of row, 16 of moments).
    assert state_values("adam", 2) == 4
    assert tiny(optimizer="adam").optimizer_state_bytes() == 16
    assert tiny(optimizer="adam").row_bytes_with_state() == 8 + 16
    assert tiny(optimizer="adam", dtype="bf16").row_bytes_with_state() == 4 + 16
    # 15 rows of 24 bytes with the moments, 15 of 8 without.
    assert tiny(optimizer="adam").embedding_bytes([10, 5]) == 15 * 24 == 360
    assert tiny(optimizer="adam").embedding_bytes([10, 5], optimizer_state=False) == 120
    mixed = tiny(embedding_dim=[2, 3], interaction="cat")
    assert [mixed.row_bytes(0), mixed.row_bytes(1)] == [8, 12]
    with pytest.raises(OptionError, match="has 2 tables, no table 2"):
        mixed.row_bytes(2)


def test_embedding_bytes_of_dlrm_kaggle():
    kaggle = load_model("dlrm-kaggle")
    assert list(kaggle.table_rows) == KAGGLE_ROWS and sum(KAGGLE_ROWS) == 33_762_577
    assert kaggle.row_bytes() == 16 * 4
    assert kaggle.embedding_bytes() == 33_762_577 * 16 * 4  # SGD keeps no state
    assert load_model("dlrm-kaggle-dim64").embedding_bytes() == 33_762_577 * 64 * 4
    # Rows passed in (a trace's) replace the model's; state is counted on request.
    assert tiny(optimizer="rowwise-adagrad").embedding_bytes([10, 5]) == 15 * (8 + 4)
    assert tiny(optimizer="rowwise-adagrad").embedding_bytes([10, 5], optimizer_state=False) == 120
    with pytest.raises(OptionError, match="has no table_rows"):
        tiny().embedding_bytes()


def test_mlp_flops_by_hand():
    # Dot, 2 tables: 3 vectors, 3 pairs; top input 2 + 3 = 5. Forward flops per sample:
    # bottom 2(4*8 + 8*2) = 96, interaction 3 pairs x 2 x dim 2 = 12, top 2(5*3 + 3*1) = 36.
    # 144 per sample x 10 samples x 3 (forward and backward) = 4320.
    model = tiny()
    assert model.top_mlp_input(2) == 5
    assert model.mlp_flops(num_tables=2) == 4320
    assert model.mlp_flops(batch_size=1, num_tables=2) == 432
    # Cat with dims 2 and 3: top input 2 + 2 + 3 = 7; top 2(7*4 + 4*1) = 64; 96 + 64 = 160.
    cat = tiny(embedding_dim=[2, 3], interaction="cat", top_mlp=[4, 1])
    assert cat.top_mlp_input(2) == 7
    assert cat.mlp_flops() == 160 * 10 * 3
    with pytest.raises(OptionError, match="pass num_tables"):
        model.mlp_flops()


def test_dcn_flops_by_hand():
    # DCNv2 with T = 2 tables of D = 4, bottom [3, 4], one cross layer of rank 2, top [2, 1]:
    # x0 is the bottom output and the 2 pooled rows, N = 3 * 4 = 12 wide, and the cross layer
    # keeps that width for the top MLP. Forward flops per sample: bottom 2*3*4 = 24; the
    # cross layer V 2*12*2 = 48, W 2*2*12 = 48, bias, x0 product and skip 3*12 = 36, so 132;
    # top 2(12*2 + 2*1) = 52. 24 + 132 + 52 = 208 per sample x 10 samples x 3 = 6240.
    dcn = tiny(embedding_dim=4, bottom_mlp=[3, 4], top_mlp=[2, 1], interaction="dcn",
               dcn_layers=1, dcn_rank=2)
    assert dcn.top_mlp_input(2) == 12
    assert dcn.mlp_flops(num_tables=2) == 6240
    # Three such layers: 24 + 3*132 + 52 = 472 per sample, x 10 x 3 = 14160.
    assert tiny(embedding_dim=4, bottom_mlp=[3, 4], top_mlp=[2, 1], interaction="dcn",
                dcn_layers=3, dcn_rank=2).mlp_flops(num_tables=2) == 14160
    # TorchRec DLRM_DCN's defaults; the keys travel through to_dict, absent for other
    # interactions.
    default = tiny(interaction="dcn")
    assert (default.dcn_layers, default.dcn_rank) == (3, 512)
    assert ModelConfig.from_dict(default.to_dict()) == default
    assert "dcn_layers" not in tiny().to_dict()
    assert "(3 cross layers of rank 512)" in default.describe()


def test_dlrm_top_mlp_inputs_match_the_reference():
    # facebookresearch/dlrm: 16 + 27*26/2 = 367 (Kaggle), 128 + 351 = 479 (Terabyte).
    assert load_model("dlrm-kaggle").top_mlp_input(26) == 367
    assert load_model("dlrm-terabyte").top_mlp_input(26) == 479


def test_check_trace(tmp_path):
    trace = generate("uniform", tmp_path / "t", [10, 20], batch_size=4, num_batches=2, seed=0,
                     show_progress=False)
    tiny(table_rows=[10, 20]).check_trace(trace)
    tiny().check_trace(trace)  # no table_rows: the trace decides
    # The trace may be a sample of larger tables: it fits when every id does.
    tiny(table_rows=[10, 21]).check_trace(trace)
    assert tiny(table_rows=[10, 21]).table_sizes(trace) == [10, 21]
    assert tiny().table_sizes(trace) == [10, 20]
    # A table the model makes smaller than the trace's fits while its ids do: 2 batches of 4
    # uniform draws over 20 rows reach beyond row 5.
    with pytest.raises(OptionError, match="looks up row 1[0-9] of its table t1, beyond the 5 "
                                          "rows of model tiny's table 1; make the trace with "
                                          "--like tiny"):
        tiny(table_rows=[10, 5]).check_trace(trace)
    with pytest.raises(OptionError, match="has 3 tables, the trace .* has 2"):
        tiny(embedding_dim=[2, 2, 2], interaction="cat").check_trace(trace.path)


def test_presets_load_and_synthetic_sizes():
    assert list_models() == ["dlrm-benchmark", "dlrm-kaggle", "dlrm-kaggle-dim64",
                             "dlrm-terabyte", "mlperf-dlrm-dcnv2", "synthetic-16gb",
                             "synthetic-1tb"]
    for name in list_models():
        model = load_model(name)
        assert ModelConfig.from_dict(model.to_dict()) == model
        assert model.num_tables == len(model.table_rows) and model.mlp_flops() > 0
        assert name in describe_model_presets() and model.describe().startswith(name)
    sixteen = load_model("synthetic-16gb").embedding_bytes(optimizer_state=False)
    terabyte = load_model("synthetic-1tb").embedding_bytes(optimizer_state=False)
    assert sixteen == pytest.approx(16e9, rel=0.1) and terabyte == pytest.approx(1e12, rel=0.1)
    # TorchRec's README gives the MLPerf tables as 97.36 GiB.
    assert load_model("dlrm-terabyte").embedding_bytes() / 2**30 == pytest.approx(97.36, abs=0.01)
    # MLPerf DLRM-DCNv2: the same tables with full Adagrad's dim fp32 values of state per row
    # (twice the weights), and 214 lookups per sample (the multi-hot sizes' sum).
    mlperf = load_model("mlperf-dlrm-dcnv2")
    assert mlperf.embedding_bytes() / 2**30 == pytest.approx(2 * 97.36, abs=0.02)
    assert sum(mlperf.pooling) == 214 and mlperf.multi_hot == "mlperf"
    assert mlperf.top_mlp_input(26) == 27 * 128  # DCN: the 27 vectors concatenated


def test_preset_files_serve_trace_generate_like():
    path = load_model("dlrm-kaggle").source
    assert table_rows_from(like=path) == KAGGLE_ROWS


@pytest.mark.parametrize("changes, message", [
    (dict(batch_size=None), r"tiny\.toml: missing key batch_size"),
    (dict(batch_size=0), r"tiny\.toml: batch_size must be a positive integer, got 0"),
    (dict(dtype="fp8"), r"dtype must be one of fp32, fp16, bf16, got 'fp8'"),
    (dict(optimizer="adamw"), r"optimizer must be one of sgd, adagrad, rowwise-adagrad, adam, "
                              r"got 'adamw'"),
    (dict(interaction="attention"), r"interaction must be one of dot, cat, dcn"),
    (dict(dcn_rank=8), r"dcn_rank is for interaction = \"dcn\", not 'dot'"),
    (dict(interaction="dcn", dcn_layers=0), r"dcn_layers must be a positive integer, got 0"),
    (dict(interaction="dcn", embedding_dim=4), r"dcn interaction needs every embedding_dim "
                                               r"equal to the bottom_mlp output 2"),
    (dict(embedding_dim=4), r"dot interaction needs every embedding_dim equal to the bottom_mlp "
                            r"output 2"),
    (dict(embedding_dim=[2, 2], table_rows=[5, 5, 5]), r"embedding_dim lists 2 tables, "
                                                       r"table_rows 3"),
    (dict(bottom_mlp=[4]), r"bottom_mlp must be a list of at least 2 positive integers"),
    (dict(table_rows=[5, -1]), r"table_rows must be a positive integer, got -1"),
    (dict(mlp_precision="int8"), r"mlp_precision must be one of fp32, tf32, fp16, bf16"),
    (dict(lr=0.1), r"unknown key 'lr'"),
])
def test_bad_models_name_the_file_and_key(changes, message):
    with pytest.raises(OptionError, match=message):
        tiny(**changes)


def test_bad_names_and_syntax(tmp_path):
    with pytest.raises(OptionError, match="unknown model 'gpt'.*dlrm-kaggle"):
        load_model("gpt")
    bad = tmp_path / "bad.toml"
    bad.write_text("embedding_dim = \n")
    with pytest.raises(OptionError, match=r"bad\.toml: not a valid TOML file"):
        load_model(bad)
