"""A study whose kernels or samples exceed float64 is bad input: one line naming the layer, exit 2."""
from ntkcheck.cli import main


def test_a_study_beyond_float64_exits_2_naming_the_layer(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text('name = "ovf"\nbudget = "quick"\nclaims = ["kernel-mean"]\n[grid.kernel-mean]\n'
                     'architecture = ["mlp"]\nactivation = ["relu"]\ndepth = [3]\nwidth = [8, 16]\n'
                     'n_networks = 8\nchunk = 4\nsigma_w = 1.0e120\n')
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ntkcheck: error: claim kernel-mean, task ") and "exceeds float64 range at dense layer" in err
